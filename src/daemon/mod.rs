//! The daemon: lifecycle, reload on SIGHUP, signals, systemd notification.
