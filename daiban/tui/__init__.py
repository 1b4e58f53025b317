"""The Textual terminal app for village agents and office staff. The only
package that imports textual; node/ and sync/ never import it.

Built by the terminal-app issue."""
