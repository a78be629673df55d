//! Kernel test of `ipvs::Client` across the `ip_vs` module going away and coming back:
//! with the "IPVS" generic netlink family unregistered (module unloaded, autoloading
//! blocked) every request and a new connection report `Error::NotAvailable`; once the
//! module is back (loaded by the kernel's own autoloading, as in production) the same
//! client re-resolves the family's new id and carries on.
//!
//! Unloading a module changes the whole guest, not just this test's network namespace,
//! so this test restores the module and the kernel's modprobe path when it ends, even by
//! panic: the suite's other kernel tests run after it in the same guest (one at a time,
//! never beside it).

use crate::testbed;

use bigbro::ipvs::{Client, Error, Op, Operation, Service, ServiceKey};
use bigbro::types::Fwmark;
use testbed::{kernel_test, loaded_ipvs_modules};

const MODPROBE_PATH: &str = "/proc/sys/kernel/modprobe";

/// The test kernel's module tree, as the host test process sees it (the guest shares the
/// host's file system read-only).
fn kernel_cache() -> String {
    std::env::var("BIGBRO_TESTBED_KERNEL_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/kernel/current", env!("CARGO_MANIFEST_DIR")))
}

/// Puts the kernel's modprobe path back and makes sure `ip_vs` is loaded again.
struct Restore {
    modprobe: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(MODPROBE_PATH, &self.modprobe);
        let _ = testbed::sh_status(&format!(
            "modprobe -d {} -a ip_vs ip_vs_wrr",
            kernel_cache()
        ));
    }
}

fn fwm(mark: u32) -> ServiceKey {
    ServiceKey::fwmark_v4(Fwmark::new(mark).unwrap())
}

kernel_test! {
    fn family_absent_then_reloaded_and_re_resolved() {
        let restore = Restore {
            modprobe: std::fs::read_to_string(MODPROBE_PATH).unwrap().trim().to_string(),
        };
        testbed::block_on(async {
            let client = Client::connect().await.unwrap();
            let old_id = client.family_id().await;
            client
                .execute(Op::AddService(Service::new(fwm(7), "wlc")))
                .await
                .unwrap();
            client.execute(Op::Flush).await.unwrap();

            // Take IPVS away, and keep the kernel from loading it back on lookup.
            std::fs::write(MODPROBE_PATH, "/nonexistent/modprobe").unwrap();
            for module in loaded_ipvs_modules() {
                testbed::sh(&format!("rmmod {module}"));
            }
            assert!(loaded_ipvs_modules().is_empty());
            assert!(!std::path::Path::new("/proc/net/ip_vs").exists());

            // The old client: its family id is stale, and the lookup finds nothing.
            let listed = client.services().await.unwrap_err();
            assert!(matches!(listed, Error::NotAvailable { .. }), "{listed:?}");
            assert_eq!(listed.operation(), &Operation::ListServices);
            assert_eq!(
                listed.to_string(),
                "listing services: IPVS is not available in this kernel (is ip_vs loaded?)"
            );
            let ops = vec![
                Op::AddService(Service::new(fwm(8), "wrr")),
                Op::DelService(fwm(9)),
            ];
            for (op, result) in ops.iter().zip(client.apply(&ops).await) {
                let err = result.unwrap_err();
                assert!(matches!(err, Error::NotAvailable { .. }), "{err:?}");
                assert_eq!(err.operation(), &Operation::Apply(op.clone()));
            }
            // A new client cannot even start.
            let connect = Client::connect().await.err().expect("connect without IPVS");
            assert!(matches!(connect, Error::NotAvailable { .. }), "{connect:?}");
            assert_eq!(connect.operation(), &Operation::Connect);

            // Let the kernel autoload again: the old client's next request finds the
            // family gone stale, looks it up (which loads ip_vs), and retries.
            std::fs::write(MODPROBE_PATH, &restore.modprobe).unwrap();
            client
                .execute(Op::AddService(Service::new(fwm(8), "wrr")))
                .await
                .unwrap();
            let new_id = client.family_id().await;
            assert_ne!(new_id, old_id, "the family came back under a new id");
            assert!(loaded_ipvs_modules().iter().any(|m| m == "ip_vs"));
            assert_eq!(client.services().await.unwrap().len(), 1);
        });
        assert_eq!(testbed::sh("ipvsadm -S -n"), "-A -f 8 -s wrr\n");
        drop(restore);
    }
}
