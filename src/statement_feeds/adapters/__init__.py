"""The I/O shell: files and watching, caches, the state store, the mailer, HTTP."""
