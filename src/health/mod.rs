//! Health probes (litmus, http, tcp): one task per distinct target, emitting samples.
//! Probes know nothing of clusters, weights or the kernel.
