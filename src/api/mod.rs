//! The HTTP API: big_brother's routes byte for byte, a JSON API, metrics and a status page.
