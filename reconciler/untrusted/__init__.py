"""How untrusted bytes are read and shown, for every boundary: the limits (`limits`),
HTTP with a deadline and a capped body (`http`), and the one escaping function and
secret redaction (`text`)."""
