"""Wire types shared by the server and its clients. Pure: no I/O, no server imports."""
