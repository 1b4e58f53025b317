"""The pure trust layer below every other package: keys and signatures
(``crypto``), certificates and their name constraint (``certs``), division
code shapes (``codes``), and the envelope format (``envelope``, ``sealing``).
It reads no database and imports nothing else of Daiban's."""
