//! Weight policy: rise/fall, ramp-up, caps and overrides turn health samples into IPVS
//! weights. Pure: no I/O and no clock of its own (time is passed in).
