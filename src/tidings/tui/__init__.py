"""The terminal client (Textual): `tidings chat`. Uses only tidings.sdk and tidings.protocol."""
