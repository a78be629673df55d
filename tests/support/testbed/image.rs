//! The guest's boot files: where the kernel cache is, and the small initramfs built fresh
//! for every VM (a few milliseconds): static busybox, the virtio and 9p modules the first
//! stage needs to reach the host's file systems, and `guest-init.sh` as `/init`. Everything
//! else (the other modules, ipvsadm, nft, ip, the test binary) the guest reads from the
//! host over 9p. It only reads the host; it never writes outside the VM's own temp dir.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The first-stage init, run by the guest kernel as `/init`.
const INIT: &str = include_str!("guest-init.sh");

/// Modules the first stage loads before it can mount 9p (their dependencies come first).
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p"];

/// The unpacked kernel package tests/setup.sh leaves in `.cache/kernel/current`.
pub struct Kernel {
    /// The directory holding `boot/`, `lib/modules/<version>/` and maybe `vmlinux`.
    pub root: PathBuf,
    /// `uname -r` of the kernel.
    pub version: String,
}

impl Kernel {
    /// The kernel cache, or what is missing from it.
    pub fn find() -> Result<Kernel, String> {
        let root = match std::env::var_os("BIGBRO_TESTBED_KERNEL_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel/current"),
        };
        if !root.join(".complete").is_file() {
            return Err(format!("the test kernel is not in {}", root.display()));
        }
        let modules = root.join("lib/modules");
        let version = fs::read_dir(&modules)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .ok_or_else(|| format!("no kernel modules under {}", modules.display()))?;
        let kernel = Kernel { root, version };
        if !kernel.modules_dir().join("modules.dep").is_file() {
            return Err(format!(
                "{} has no modules.dep",
                kernel.modules_dir().display()
            ));
        }
        kernel.image()?;
        Ok(kernel)
    }

    /// `lib/modules/<version>` of the cache.
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.version)
    }

    /// The image qemu boots: the uncompressed vmlinux when setup.sh could extract it (it
    /// saves the guest ~3 s of xz decompression under TCG), else the Debian vmlinuz.
    pub fn image(&self) -> Result<PathBuf, String> {
        let vmlinux = self.root.join("vmlinux");
        if vmlinux.is_file() {
            return Ok(vmlinux);
        }
        let vmlinuz = self.root.join(format!("boot/vmlinuz-{}", self.version));
        if vmlinuz.is_file() {
            return Ok(vmlinuz);
        }
        Err(format!("no kernel image in {}", self.root.display()))
    }
}

/// Writes the initramfs for `kernel` to `out`, with busybox copied from `busybox`.
pub fn write_initramfs(kernel: &Kernel, busybox: &Path, out: &Path) -> Result<(), String> {
    let read = |path: &Path| fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()));
    let mut cpio = Cpio::default();
    for dir in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "host", "results",
        "lib", "boot",
    ] {
        cpio.dir(dir);
    }
    cpio.file("bin/busybox", 0o755, &read(busybox)?);
    cpio.file("init", 0o755, INIT.as_bytes());

    let modules_dir = kernel.modules_dir();
    let dep = fs::read_to_string(modules_dir.join("modules.dep"))
        .map_err(|e| format!("reading modules.dep: {e}"))?;
    let order = load_order(&parse_modules_dep(&dep), BOOT_MODULES)?;
    let mut list = String::new();
    for path in &order {
        let file = Path::new(path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        cpio.file(
            &format!("boot/{file}"),
            0o644,
            &read(&modules_dir.join(path))?,
        );
        list.push_str(&file);
        list.push('\n');
    }
    cpio.file("boot/modules", 0o644, list.as_bytes());
    fs::write(out, cpio.finish()).map_err(|e| format!("writing {}: {e}", out.display()))
}

/// modules.dep as a map from module name (`ip_vs`, `9pnet_virtio`) to (path, dependency
/// paths).
fn parse_modules_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let (path, deps) = line.split_once(':')?;
            let deps = deps.split_whitespace().map(str::to_string).collect();
            Some((module_name(path), (path.to_string(), deps)))
        })
        .collect()
}

/// `kernel/net/9p/9pnet_virtio.ko` → `9pnet_virtio`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// The paths of `wanted` and everything they need, each after its dependencies.
fn load_order(
    dep: &BTreeMap<String, (String, Vec<String>)>,
    wanted: &[&str],
) -> Result<Vec<String>, String> {
    fn visit(
        path: &str,
        dep: &BTreeMap<String, (String, Vec<String>)>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(path.to_string()) {
            return;
        }
        if let Some((_, deps)) = dep.get(&module_name(path)) {
            for d in deps {
                visit(d, dep, seen, order);
            }
        }
        order.push(path.to_string());
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for name in wanted {
        let (path, _) = dep
            .get(*name)
            .ok_or_else(|| format!("module {name} is not in modules.dep"))?;
        visit(path, dep, &mut seen, &mut order);
    }
    Ok(order)
}

/// A cpio archive in the "newc" format the kernel unpacks as its initramfs.
#[derive(Default)]
struct Cpio {
    bytes: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | perm, data);
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.inode += 1;
        let nlink = if mode & 0o040_000 != 0 { 2 } else { 1 };
        let fields = [
            self.inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            name.len() as u32 + 1,
            0, // check
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_load_after_their_dependencies() {
        let dep = parse_modules_dep(
            "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko\n\
             kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko\n\
             kernel/fs/netfs/netfs.ko:\n\
             kernel/net/9p/9pnet.ko:\n",
        );
        assert_eq!(
            load_order(&dep, &["9p"]).unwrap(),
            [
                "kernel/net/9p/9pnet.ko",
                "kernel/fs/netfs/netfs.ko",
                "kernel/fs/fscache/fscache.ko",
                "kernel/fs/9p/9p.ko"
            ]
        );
        assert!(load_order(&dep, &["ip_vs"]).unwrap_err().contains("ip_vs"));
    }

    #[test]
    fn cpio_entries_are_aligned_newc() {
        let mut cpio = Cpio::default();
        cpio.file("init", 0o755, b"#!/bin/sh\n");
        let bytes = cpio.finish();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(bytes.len() % 4, 0);
        let header_and_name = 110 + "init\0".len();
        let data_at = header_and_name.div_ceil(4) * 4;
        assert_eq!(&bytes[data_at..data_at + 10], b"#!/bin/sh\n");
    }
}
