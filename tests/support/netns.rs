//! Runs a test in a network namespace of its own, for tests of kernel state that the host
//! kernel has (nf_tables): a fresh thread calls `unshare(CLONE_NEWNET)` (namespaces are per
//! thread, and child processes such as `nft` inherit the thread's), then runs the test on a
//! current-thread tokio runtime, so every task and socket stays in that namespace.
//!
//! Used by integration tests (`mod netns;`) and by library unit tests (through `#[path]`).
//! Needs root; it never touches the namespace of the process.

use std::future::Future;

/// Runs `test` on a fresh thread in a fresh network namespace and propagates its panic.
pub fn in_netns<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET) failed: this test must run as root");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test());
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}
