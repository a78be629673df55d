//! `bigbro ipvsadm`: an ipvsadm-compatible command line on bigbro's own netlink client.
