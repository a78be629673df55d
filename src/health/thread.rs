//! The probes' own thread: a current-thread tokio runtime on a dedicated OS thread, for
//! the daemon's weight driver and its probe tasks (`DriverOptions::probe_runtime`).
//!
//! Why: at 10,000 targets probing is thousands of small wake-ups a second, and each sample
//! goes to the driver. On one current-thread runtime, with the driver beside the probes,
//! they cost far fewer context switches than spread over the shared worker pool
//! (docs/PERFORMANCE.md). And being an OS thread of its own, probing and the rest of the
//! daemon are shared out by the kernel's scheduler: a burst of probes cannot hold the API
//! or the controller (on the worker pool) for longer than this thread's fair share of the
//! CPU, and a long controller pass or API request cannot delay a probe's start or its
//! timeout. What crosses over are the driver's commands (answered between two probe
//! steps) and its weight batches. It must only ever run non-blocking tasks (one blocking
//! call would stall every probe). Dropping it stops the thread and every task on it.

use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// A running probe thread. See the module notes.
pub struct ProbeThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ProbeThread {
    /// Starts the thread, named `name` (as `ps -T` shows it).
    pub fn start(name: &str) -> std::io::Result<ProbeThread> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                // Runs the tasks spawned through `handle` until told to stop (or the
                // ProbeThread is dropped); dropping the runtime then drops them all.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(ProbeThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where to spawn probe tasks (`ProbeScheduler::spawn_on`, `DriverOptions::probe_runtime`).
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for ProbeThread {
    /// Stops the runtime and waits for its thread to end. Must not be dropped inside an
    /// async context (it blocks while the thread drops its tasks).
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_the_named_thread_until_it_is_dropped() {
        let probes = ProbeThread::start("test-probes").unwrap();
        let name = std::thread::current().name().map(str::to_string);
        let (tx, rx) = std::sync::mpsc::channel();
        let (_never, forever) = oneshot::channel::<()>();
        let pending = probes.handle().spawn(async move {
            let here = std::thread::current().name().map(str::to_string);
            tx.send(here).unwrap();
            let _ = forever.await;
        });
        let ran_on = rx.recv().unwrap();
        assert_eq!(ran_on.as_deref(), Some("test-probes"));
        assert_ne!(ran_on, name);
        drop(probes);
        // The runtime is gone, and its task with it (not left running somewhere).
        let rt = Builder::new_current_thread().build().unwrap();
        assert!(rt.block_on(pending).unwrap_err().is_cancelled());
    }
}
