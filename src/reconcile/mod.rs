//! The reconciler: the only writer to the kernel. Diffs desired state against what the
//! kernel holds and sends the minimal operations as one batch.
