//! Running parsed ipvsadm commands against a [`Backend`], with ipvsadm's control flow:
//! what goes to stdout (buffered until exit, as C stdio buffers a pipe) and stderr
//! (immediately), which failures end the process (`exit(1)` when a listing fails, `exit(2)`
//! for bad arguments or no IPVS) and which only set the status (kernel errors: 255).
//!
//! A restore (`-R`) runs line by line with ipvsadm's semantics: a bad argument stops
//! everything with status 2, a kernel error is reported and the next line runs, and the
//! status is that of the last line. Consecutive changes already read are handed to the
//! backend together (it may pipeline them), never held back while waiting for more input,
//! and their errors are reported in line order before anything else is printed. The kernel
//! is contacted only when a command needs it.

use std::io::{Read, Write};
use std::path::PathBuf;

use super::backend::{Backend, Func, KernelError};
use super::command::{AdmCommand, Format, List, ListTarget};
use super::conn;
use super::help;
use super::json;
use super::listing;
use super::names::Resolver;
use super::parse::{parse, ParseError};
use super::restore::ConfigStream;
use super::sort::{sort_dests, sort_services};
use crate::ipvs::{DestEntry, Info, Op, ServiceEntry};

/// How many consecutive changes of a restore are handed to the backend at once.
const BATCH: usize = 256;

/// The process ends now with this status (C `exit()`).
#[derive(Debug, PartialEq, Eq)]
pub struct Exit(pub u8);

/// Opens the kernel connection (libipvs `ipvs_init`).
pub type Connect<'a> = dyn FnMut() -> Result<Box<dyn Backend + 'a>, KernelError> + 'a;

/// Everything a run needs from the outside world.
pub struct Runner<'a> {
    /// argv[0] as ipvsadm would print it.
    pub program: String,
    pub names: &'a dyn Resolver,
    connect: Box<Connect<'a>>,
    backend: Option<Box<dyn Backend + 'a>>,
    /// Standard output, written by the caller when the run ends.
    pub out: Vec<u8>,
    /// Standard error, written through at once.
    pub err: &'a mut dyn Write,
    /// The connection table (`/proc/net/ip_vs_conn`).
    pub conn_file: PathBuf,
}

impl<'a> Runner<'a> {
    pub fn new(
        program: impl Into<String>,
        names: &'a dyn Resolver,
        connect: Box<Connect<'a>>,
        err: &'a mut dyn Write,
    ) -> Runner<'a> {
        Runner {
            program: program.into(),
            names,
            connect,
            backend: None,
            out: Vec::new(),
            err,
            conn_file: PathBuf::from(conn::CONN_PROC_FILE),
        }
    }

    /// ipvsadm's message when `ipvs_init` fails; exit 2.
    fn cannot_initialize(&mut self, e: &KernelError) -> Exit {
        let msg = format!(
            "Can't initialize ipvs: {}\nAre you sure that IP Virtual Server is built in the kernel or as module?\n",
            e.message(Func::Other)
        );
        self.eprint(&msg);
        Exit(2)
    }

    fn eprint(&mut self, text: &str) {
        let _ = self.err.write_all(text.as_bytes());
        let _ = self.err.flush();
    }

    /// The kernel, connected on first use; failing that, ipvsadm's message and exit 2.
    fn kernel(&mut self) -> Result<&mut (dyn Backend + 'a), Exit> {
        if self.backend.is_none() {
            match (self.connect)() {
                Ok(b) => self.backend = Some(b),
                Err(e) => return Err(self.cannot_initialize(&e)),
            }
        }
        Ok(self.backend.as_deref_mut().expect("connected above"))
    }

    /// A whole invocation (`args` without argv[0]); returns the exit status.
    pub fn run(&mut self, args: &[Vec<u8>], stdin: &mut dyn Read) -> u8 {
        let status = if args.is_empty() {
            self.list_all(Format::default()).map(|()| 0)
        } else {
            self.line(args, stdin, false)
        };
        match status {
            Ok(0) => 0,
            Ok(_) => 255,
            Err(Exit(code)) => code,
        }
    }

    /// ipvsadm's `process_options`: 0 or -1, or an exit.
    fn line(
        &mut self,
        args: &[Vec<u8>],
        stdin: &mut dyn Read,
        in_restore: bool,
    ) -> Result<i32, Exit> {
        match parse(args, self.names) {
            Err(e) => self.parse_error(e),
            Ok(AdmCommand::Restore) if in_restore => {
                let msg = help::try_help(&self.program);
                self.eprint(&msg);
                Err(Exit(255))
            }
            Ok(AdmCommand::Restore) => self.restore(stdin),
            Ok(cmd) => self.execute(&cmd),
        }
    }

    fn parse_error(&mut self, e: ParseError) -> Result<i32, Exit> {
        match e {
            ParseError::Fail(msg) => {
                self.eprint(&format!("{msg}\n"));
                Err(Exit(2))
            }
            ParseError::Popt(msg) => {
                self.eprint(&format!("{msg}\n"));
                Ok(-1)
            }
            ParseError::TryHelp => {
                let msg = help::try_help(&self.program);
                self.eprint(&msg);
                Err(Exit(255))
            }
        }
    }

    /// One command other than a restore.
    pub fn execute(&mut self, cmd: &AdmCommand) -> Result<i32, Exit> {
        match cmd {
            AdmCommand::Help => {
                let text = help::usage(&self.program);
                self.out.extend_from_slice(text.as_bytes());
                Err(Exit(0))
            }
            AdmCommand::Version => {
                self.out.extend_from_slice(help::VERSION.as_bytes());
                Err(Exit(0))
            }
            AdmCommand::List(list) => self.list(list).map(|()| 0),
            AdmCommand::Save(format) => self.list_all(*format).map(|()| 0),
            AdmCommand::Restore => Ok(0),
            AdmCommand::Change(op) => {
                let mut pending = vec![op.clone()];
                self.flush(&mut pending)
            }
        }
    }

    fn report(&mut self, op: &Op, result: Result<(), KernelError>) -> i32 {
        match result {
            Ok(()) => 0,
            Err(e) => {
                let msg = format!("{}\n", e.message(Func::of(op)));
                self.eprint(&msg);
                -1
            }
        }
    }

    fn list(&mut self, list: &List) -> Result<(), Exit> {
        let format = list.format;
        match &list.target {
            ListTarget::All if list.json => {
                let info = self.info()?;
                let table = self.table(&format)?;
                self.out.extend_from_slice(&json::table(&info, &table));
                Ok(())
            }
            ListTarget::All => self.list_all(format),
            ListTarget::Service(key) => {
                let entry = match self.kernel()?.service(key) {
                    Ok(e) => e,
                    Err(e) => return self.die(Func::GetService, e),
                };
                let dests = self.dests(&entry, &format)?;
                if list.json {
                    self.out
                        .extend_from_slice(&json::one_service(&entry, &dests));
                } else {
                    self.out
                        .extend_from_slice(listing::title(&format).as_bytes());
                    let block = listing::service_entry(&entry, &dests, &format, self.names);
                    self.out.extend_from_slice(&block);
                }
                Ok(())
            }
            ListTarget::Timeout => {
                let t = self.kernel()?.timeouts().map_err(|_| Exit(1))?;
                let text = if list.json {
                    json::timeouts(&t)
                } else {
                    listing::timeouts(&t).into_bytes()
                };
                self.out.extend_from_slice(&text);
                Ok(())
            }
            ListTarget::Daemon => {
                let d = self.kernel()?.daemons().map_err(|_| Exit(1))?;
                let text = if list.json {
                    json::daemons(&d)
                } else {
                    listing::daemons(&d).into_bytes()
                };
                self.out.extend_from_slice(&text);
                Ok(())
            }
            ListTarget::Connections => self.list_conn(&format, list.json),
        }
    }

    /// Prints ipvsadm's message for a failed query and exits 1.
    fn die<T>(&mut self, func: Func, e: KernelError) -> Result<T, Exit> {
        let msg = format!("{}\n", e.message(func));
        self.eprint(&msg);
        Err(Exit(1))
    }

    fn info(&mut self) -> Result<Info, Exit> {
        match self.kernel()?.info() {
            Ok(i) => Ok(i),
            Err(e) => Err(self.cannot_initialize(&e)),
        }
    }

    fn dests(&mut self, entry: &ServiceEntry, format: &Format) -> Result<Vec<DestEntry>, Exit> {
        match self.kernel()?.dests(&entry.service.key) {
            Ok(mut d) => {
                if !format.nosort {
                    sort_dests(&mut d);
                }
                Ok(d)
            }
            Err(e) => self.die(Func::GetDests, e),
        }
    }

    fn services(&mut self, format: &Format) -> Result<Vec<ServiceEntry>, Exit> {
        match self.kernel()?.services() {
            Ok(mut s) => {
                if !format.nosort {
                    sort_services(&mut s);
                }
                Ok(s)
            }
            Err(e) => self.die(Func::GetServices, e),
        }
    }

    fn table(&mut self, format: &Format) -> Result<Vec<(ServiceEntry, Vec<DestEntry>)>, Exit> {
        let services = self.services(format)?;
        let mut table = Vec::with_capacity(services.len());
        for s in services {
            let d = self.dests(&s, format)?;
            table.push((s, d));
        }
        Ok(table)
    }

    /// ipvsadm's `list_all` (also `-S`).
    fn list_all(&mut self, format: Format) -> Result<(), Exit> {
        if !format.rule {
            let info = self.info()?;
            self.out
                .extend_from_slice(listing::header(&info).as_bytes());
        } else {
            // ipvs_init talks to the kernel even for -S.
            self.kernel()?;
        }
        let services = self.services(&format)?;
        self.out
            .extend_from_slice(listing::title(&format).as_bytes());
        for s in &services {
            let d = self.dests(s, &format)?;
            let block = listing::service_entry(s, &d, &format, self.names);
            self.out.extend_from_slice(&block);
        }
        Ok(())
    }

    /// ipvsadm's `list_conn`.
    fn list_conn(&mut self, format: &Format, as_json: bool) -> Result<(), Exit> {
        let file = self.conn_file.display().to_string();
        let Ok(text) = std::fs::read(&self.conn_file) else {
            self.eprint(&format!("cannot open file {file}\n"));
            return Err(Exit(1));
        };
        let text = String::from_utf8_lossy(&text);
        let mut lines = text.split_inclusive('\n');
        if lines.next().is_none() {
            self.eprint(&format!("unexpected input from {file}\n"));
            return Err(Exit(1));
        }
        let mut conns = Vec::new();
        for line in lines {
            match conn::scan_line(line) {
                Some(c) => conns.push(c),
                // sscanf hit the end of its input: ipvsadm exits 1 mid-listing.
                None => {
                    self.emit_conns(format, as_json, &conns);
                    return Err(Exit(1));
                }
            }
        }
        self.emit_conns(format, as_json, &conns);
        Ok(())
    }

    fn emit_conns(&mut self, format: &Format, as_json: bool, conns: &[(conn::Conn, usize)]) {
        if as_json {
            let list: Vec<conn::Conn> = conns.iter().map(|(c, _)| c.clone()).collect();
            self.out.extend_from_slice(&json::connections(&list));
            return;
        }
        self.out.extend_from_slice(conn::title(format).as_bytes());
        for (c, n) in conns {
            let row = conn::row(c, *n, format, self.names);
            self.out.extend_from_slice(&row);
        }
    }

    /// ipvsadm's `restore_table`.
    fn restore(&mut self, stdin: &mut dyn Read) -> Result<i32, Exit> {
        let mut stream = ConfigStream::new(stdin);
        let mut pending: Vec<Op> = Vec::new();
        let mut result = 0;
        while let Ok(Some(words)) = stream.next_line() {
            if words.is_empty() {
                continue;
            }
            let parsed = parse(&words, self.names);
            if let Ok(AdmCommand::Change(op)) = parsed {
                pending.push(op);
                // Apply what is at hand before waiting for more input (or when a batch
                // is full): a slow writer sees each change made as ipvsadm would make it.
                if pending.len() >= BATCH || !stream.has_buffered() {
                    result = self.flush(&mut pending)?;
                }
                continue;
            }
            if !pending.is_empty() {
                self.flush(&mut pending)?;
            }
            result = match parsed {
                Err(e) => self.parse_error(e)?,
                Ok(AdmCommand::Restore) => {
                    let msg = help::try_help(&self.program);
                    self.eprint(&msg);
                    return Err(Exit(255));
                }
                Ok(cmd) => self.execute(&cmd)?,
            };
        }
        if !pending.is_empty() {
            result = self.flush(&mut pending)?;
        }
        Ok(result)
    }

    /// Applies pending changes; reports their errors in order; the last one's status.
    fn flush(&mut self, pending: &mut Vec<Op>) -> Result<i32, Exit> {
        let ops = std::mem::take(pending);
        let results = self.kernel()?.apply(&ops);
        let mut last = 0;
        for (op, r) in ops.iter().zip(results) {
            last = self.report(op, r);
        }
        Ok(last)
    }
}
