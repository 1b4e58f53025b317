"""Sync between tiers: envelopes, keys and certificates, the aiohttp server and
the protocol client. Never imports textual.

Built by the sync issue; the node layer keeps personal data in one table
(``personal``) so that this layer can seal it."""
