//! The IPVS half of `bigbro check`'s plan is what a real kernel holds: restored with the
//! real `ipvsadm -R` into the test bed's IPVS (Debian 6.1 guest), every example's plan
//! is accepted and `ipvsadm -S -n` lists it back line for line. This covers every
//! forwarding method, IPv6 fwmark services, the relay service and the schedulers the
//! examples use, and the service options (persistence, scheduler flags, one-packet).

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
    let path = if config.starts_with('/') {
        config.to_string()
    } else {
        format!("{}/{config}", env!("CARGO_MANIFEST_DIR"))
    };
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

    /// Persistence with an IPv4 mask and an IPv6 prefix, sh and mh flags, one-packet
    /// scheduling: the kernel keeps each as the plan writes it.
    fn ipvs_holds_the_service_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("options.yml");
        std::fs::write(&path, OPTIONS).unwrap();
        let (plan, saved) = restore_and_save(path.to_str().unwrap());
        assert!(plan.contains("-A -f 53 -s sh -p 120 -M 255.255.0.0 -o -b sh-fallback,sh-port\n"), "{plan}");
        assert!(plan.contains("-A -f 66 -6 -s mh -p 300 -M 64 -b mh-port\n"), "{plan}");
        assert_eq!(sorted_lines(&saved), sorted_lines(&plan));
    }
}

const OPTIONS: &str = "\
clusters:
  - cluster_name: dns
    fwmark: 53
    scheduler: sh
    persistence: {timeout: 120, netmask: 255.255.0.0}
    scheduler_flags: [sh-fallback, sh-port]
    one_packet: true
    nodes: [{address: 10.0.0.1, port: 53, path: /}]
  - cluster_name: v6
    fwmark: 66
    scheduler: mh
    persistence: {netmask: 64}
    scheduler_flags: [mh-port]
    forwarding: dr
    nodes: [{address: 'fd00::1', port: 80, path: /}]
";
