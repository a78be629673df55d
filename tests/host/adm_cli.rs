//! The `bigbro ipvsadm` binary against the real ipvsadm's recorded answers, on the host (no
//! IPVS needed): every command line of the corpus that ipvsadm refuses before talking to
//! the kernel (bad arguments, exit 2; popt errors and "Try ... -h", exit 255), plus `-h`
//! and `-v`, must give the same stdout, stderr and exit status byte for byte. The answers
//! in tests/adm_fixtures/args_recorded.txt were recorded from Debian's ipvsadm 1.31-1+b1 on
//! a 6.1 kernel with IPVS (see that file's header). Also checks that the binary behaves as
//! ipvsadm when invoked under that name. The live comparison is tests/kernel/adm.rs.

use crate::adm_common;

use std::path::Path;
use std::process::{Command, Stdio};

const BIGBRO: &str = env!("CARGO_BIN_EXE_bigbro");

/// One recorded answer.
struct Recorded {
    args: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: i32,
}

/// Parses args_recorded.txt: `### ARGS`, `--- stdout N` + N bytes, `--- stderr N` + N
/// bytes, `--- rc N`.
fn recorded() -> Vec<Recorded> {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/adm_fixtures/args_recorded.txt"),
    )
    .unwrap();
    let mut pos = 0;
    let line = |pos: &mut usize| -> String {
        let end = data[*pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| *pos + i);
        let l = String::from_utf8(data[*pos..end].to_vec()).unwrap();
        *pos = end + 1;
        l
    };
    let mut out = Vec::new();
    while pos < data.len() {
        let head = line(&mut pos);
        if head.starts_with('#') && !head.starts_with("### ") {
            continue;
        }
        let args = head.strip_prefix("### ").expect("### ARGS").to_string();
        let block = |name: &str, pos: &mut usize| -> Vec<u8> {
            let h = line(pos);
            let n: usize = h
                .strip_prefix(&format!("--- {name} "))
                .unwrap_or_else(|| panic!("--- {name} N, got {h}"))
                .parse()
                .unwrap();
            let b = data[*pos..*pos + n].to_vec();
            *pos += n;
            b
        };
        let stdout = block("stdout", &mut pos);
        let stderr = block("stderr", &mut pos);
        let rc = line(&mut pos);
        let status = rc.strip_prefix("--- rc ").unwrap().parse().unwrap();
        out.push(Recorded {
            args,
            stdout,
            stderr,
            status,
        });
    }
    out
}

/// True for answers ipvsadm gives before it asks the kernel anything.
fn refused_before_the_kernel(r: &Recorded) -> bool {
    let err = String::from_utf8_lossy(&r.stderr);
    match r.status {
        0 => r.stderr.is_empty() && (r.stdout.starts_with(b"ipvsadm v1.31")),
        2 => r.stdout.is_empty(),
        255 => {
            r.stdout.is_empty()
                && (err.starts_with("Try `")
                    || err.ends_with(": unknown option\n")
                    || err.ends_with(": missing argument\n")
                    || err.ends_with(": option does not take an argument\n"))
        }
        _ => false,
    }
}

#[test]
fn refused_command_lines_answer_like_ipvsadm() {
    let all = recorded();
    assert!(all.len() > 200, "the recording holds {} answers", all.len());
    let mut checked = 0;
    let mut report = String::new();
    for r in all.iter().filter(|r| refused_before_the_kernel(r)) {
        checked += 1;
        let out = Command::new(BIGBRO)
            .arg("ipvsadm")
            .args(adm_common::shell_words(&r.args))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let status = out.status.code().unwrap_or(-1);
        if out.stdout != r.stdout || out.stderr != r.stderr || status != r.status {
            report.push_str(&format!(
                "### ipvsadm {}\nipvsadm: {:?} {:?} {}\nbigbro:  {:?} {:?} {}\n",
                r.args,
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr),
                r.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                status
            ));
        }
    }
    assert!(checked > 100, "only {checked} refusals checked");
    assert!(report.is_empty(), "bigbro ipvsadm differs:\n{report}");
}

#[test]
fn invoked_as_ipvsadm_it_is_ipvsadm() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ipvsadm");
    std::os::unix::fs::symlink(BIGBRO, &link).unwrap();
    // ipvsadm names itself by argv[0] as given.
    let out = Command::new(&link).arg("-t").output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    let p = link.display();
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("Try `{p} -h' or '{p} --help' for more information.\n")
    );
    let out = Command::new(&link).arg("-v").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
    );
    // `bigbro ipvsadm` hands every word over, `--` and `-h` included.
    let out = Command::new(BIGBRO)
        .args(["ipvsadm", "--", "-L"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let out = Command::new(BIGBRO)
        .args(["ipvsadm", "-h"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("\n  ipvsadm -A|E virtual-service [-s scheduler]"));
}
