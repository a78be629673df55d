//! Data-plane fixtures (work in progress).
