//! The IPVS half of `bigbro check`'s plan is what a real kernel holds: restored with the
//! real `ipvsadm -R` into the test bed's IPVS (Debian 6.1 guest), every example's plan
//! is accepted and `ipvsadm -S -n` lists it back line for line. This covers every
//! forwarding method, IPv6 fwmark services, the relay service and the schedulers the
//! examples use.

use crate::testbed;

use testbed::kernel_test;

/// Lines sorted, since the kernel lists services in hash order, not file order.
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn restore_and_save(config: &str) -> (String, String) {
    let bin = env!("CARGO_BIN_EXE_bigbro");
    let path = format!("{}/{config}", env!("CARGO_MANIFEST_DIR"));
    let plan = testbed::sh(&format!("{bin} check --ipvs -c {path}"));
    assert!(!plan.is_empty(), "{config}: empty plan");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.ipvs");
    std::fs::write(&file, &plan).unwrap();
    testbed::sh(&format!("ipvsadm -R < {}", file.display()));
    (plan, testbed::sh("ipvsadm -S -n"))
}

kernel_test! {
    fn ipvs_holds_the_big_brother_example_plan() {
        let (plan, saved) = restore_and_save("config/big_brother.yml");
        assert_eq!(sorted_lines(&saved), sorted_lines(&plan));
    }

    fn ipvs_holds_the_cluster_map_example_plan() {
        let (plan, saved) = restore_and_save("config/cluster_map.yml");
        assert_eq!(sorted_lines(&saved), sorted_lines(&plan));
    }

    /// ipip with a relay service, gue with checksums and the mh scheduler, IPv6 direct
    /// routing.
    fn ipvs_holds_the_bigbro_example_plan() {
        let (plan, saved) = restore_and_save("config/bigbro.yml");
        assert!(plan.contains("--tun-type gue --tun-port 6080 --tun-csum"), "{plan}");
        assert!(plan.contains("-A -f 53 -6 -s rr"), "{plan}");
        assert_eq!(sorted_lines(&saved), sorted_lines(&plan));
    }

    fn ipvs_holds_the_reference_example_plan() {
        let (plan, saved) = restore_and_save("tests/fixtures/big_brother_reference.yml");
        assert_eq!(sorted_lines(&saved), sorted_lines(&plan));
    }
}
