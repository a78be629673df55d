//! A daemon on in-memory fakes, for tests of what sits on top of [`Handle`] (the HTTP
//! API, the CLI) and of the controller itself: the in-memory IPVS table and mark rules of
//! `reconcile`, the in-memory interfaces and addresses of `route`, and a scripted prober whose answers the test sets per node.
//!
//! Fakes are for fast tests of logic only; the kernel behaviour is tested in the test bed.
//! Compiled only for tests (`cfg(test)`, or the `testing` feature that tests/ get through
//! the crate's dev-dependency on itself, Cargo.toml): never into the shipped binary.

use std::path::Path;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::controller::{spawn, Options};
use super::handle::Handle;
use crate::config::{self, Errors};
use crate::health::{Script, ScriptedProber, Target};
use crate::reconcile::{FakeKernel, FakeMarks};
use crate::route::FakeRoute;
use crate::weight::DriverOptions;

/// A running daemon on fakes.
pub struct Fake {
    pub handle: Handle,
    pub kernel: Arc<FakeKernel>,
    pub marks: Arc<FakeMarks>,
    /// The namespace's interfaces and addresses (the VIPs on bigbro's interface).
    pub route: Arc<FakeRoute>,
    pub prober: ScriptedProber,
    pub task: JoinHandle<()>,
}

/// Starts a daemon on fakes with the configuration at `config_path` (read again on
/// reload). Every node answers health 100 until the test says otherwise. Must be called
/// inside a tokio runtime.
pub fn spawn_fake(config_path: &Path) -> Result<Fake, Errors> {
    spawn_fake_with(config_path, FakeKernel::new())
}

/// The same, on a fake kernel the test has filled (to test adoption).
pub fn spawn_fake_with(config_path: &Path, kernel: FakeKernel) -> Result<Fake, Errors> {
    spawn_fake_opts(kernel, test_options(config_path))
}

/// Options for a daemon on fakes: a fixed probe jitter seed.
pub fn test_options(config_path: &Path) -> Options {
    let mut options = Options::new(config_path);
    options.driver = DriverOptions {
        jitter_seed: Some(7),
        ..DriverOptions::default()
    };
    options
}

/// The same with the test's own options (nagios program, drain time...).
pub fn spawn_fake_opts(kernel: FakeKernel, options: Options) -> Result<Fake, Errors> {
    spawn_fake_on(kernel, FakeRoute::new(), options)
}

/// The same on a namespace the test has filled (interfaces and addresses).
pub fn spawn_fake_on(
    kernel: FakeKernel,
    route: FakeRoute,
    options: Options,
) -> Result<Fake, Errors> {
    let model = config::load(&options.config_path)?;
    let kernel = Arc::new(kernel);
    let marks = Arc::new(FakeMarks::new());
    let route = Arc::new(route);
    let prober = ScriptedProber::new();
    let (handle, task) = spawn(
        model,
        options,
        kernel.clone(),
        marks.clone(),
        route.clone(),
        prober.clone(),
    );
    Ok(Fake {
        handle,
        kernel,
        marks,
        route,
        prober,
        task,
    })
}

impl Fake {
    /// Makes the litmus health endpoint of `target` answer `health` from now on.
    pub fn set_health(&self, target: &Target, health: u16) {
        self.prober.set(target, Script::healthy(health));
    }
}
