//! What an exec copies from a running container process, read from `/proc/PID` on the host: its
//! environment, credentials, capability bounds, working directory and cgroup files.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::cgroups;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{0}: no {1} line")]
    Status(PathBuf, &'static str),
}

/// The identity and limits of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Creds {
    /// Effective ids: what the process acts as.
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Capability masks (bit n = capability n).
    pub cap_bounding: u64,
    pub cap_inheritable: u64,
    pub cap_permitted: u64,
    pub cap_effective: u64,
    pub cap_ambient: u64,
    pub no_new_privs: bool,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub pid: u32,
    /// `NAME=value` entries, in order.
    pub env: Vec<(OsString, OsString)>,
    pub creds: Creds,
    /// As the container sees it (relative to its root).
    pub cwd: PathBuf,
    pub cgroup_procs: Vec<PathBuf>,
}

impl Target {
    pub fn read(pid: u32) -> Result<Self, TargetError> {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let read = |name: &str| {
            let p = proc.join(name);
            std::fs::read(&p).map_err(|e| TargetError::Read(p, e))
        };
        let text = |name: &str| read(name).map(|b| String::from_utf8_lossy(&b).into_owned());
        let status_path = proc.join("status");
        let creds = parse_status(&text("status")?).map_err(|what| TargetError::Status(status_path, what))?;
        let env = parse_environ(&read("environ")?);
        let cwd_link = proc.join("cwd");
        let cwd = std::fs::read_link(&cwd_link).map_err(|e| TargetError::Read(cwd_link, e))?;
        let mountinfo_path = PathBuf::from("/proc/self/mountinfo");
        let mountinfo = std::fs::read_to_string(&mountinfo_path).map_err(|e| TargetError::Read(mountinfo_path, e))?;
        let cgroup_procs = cgroups::procs_files(&text("cgroup")?, &mountinfo);
        Ok(Self { pid, env, creds, cwd, cgroup_procs })
    }
}

/// `/proc/PID/environ`: NUL-terminated `NAME=value` entries. Entries without `=` cannot be passed
/// on as variables and are dropped.
pub fn parse_environ(bytes: &[u8]) -> Vec<(OsString, OsString)> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let eq = entry.iter().position(|b| *b == b'=').filter(|&i| i > 0)?;
            Some((OsString::from_vec(entry[..eq].to_vec()), OsString::from_vec(entry[eq + 1..].to_vec())))
        })
        .collect()
}

/// The fields of `/proc/PID/status` an exec needs; the error names the missing line.
pub fn parse_status(text: &str) -> Result<Creds, &'static str> {
    let field = |key: &'static str| {
        text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':'))).map(str::trim).ok_or(key)
    };
    // `Uid:` and `Gid:` list real, effective, saved and filesystem ids.
    let effective = |key: &'static str| -> Result<u32, &'static str> {
        field(key)?.split_ascii_whitespace().nth(1).and_then(|v| v.parse().ok()).ok_or(key)
    };
    let mask = |key: &'static str| u64::from_str_radix(field(key)?, 16).map_err(|_| key);
    let groups: Result<Vec<u32>, _> =
        field("Groups")?.split_ascii_whitespace().map(|g| g.parse().map_err(|_| "Groups")).collect();
    Ok(Creds {
        uid: effective("Uid")?,
        gid: effective("Gid")?,
        groups: groups?,
        cap_bounding: mask("CapBnd")?,
        cap_inheritable: mask("CapInh")?,
        cap_permitted: mask("CapPrm")?,
        cap_effective: mask("CapEff")?,
        // Absent before Linux 4.3: no ambient set then.
        cap_ambient: mask("CapAmb").unwrap_or(0),
        // Absent before Linux 4.10: no flag then.
        no_new_privs: field("NoNewPrivs").is_ok_and(|v| v == "1"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t1001\t1001\t1001\n\
        Gid:\t2000\t2001\t2001\t2001\nFDSize:\t64\nGroups:\t10 20 \nCapInh:\t0000000000000000\n\
        CapPrm:\t0000000000000400\nCapEff:\t0000000000000400\nCapBnd:\t00000000a80425fb\n\
        CapAmb:\t0000000000000400\nNoNewPrivs:\t1\nSeccomp:\t0\n";

    #[test]
    fn status_fields() {
        let want = Creds {
            uid: 1001,
            gid: 2001,
            groups: vec![10, 20],
            cap_bounding: 0xa80425fb,
            cap_inheritable: 0,
            cap_permitted: 0x400,
            cap_effective: 0x400,
            cap_ambient: 0x400,
            no_new_privs: true,
        };
        assert_eq!(parse_status(STATUS), Ok(want));

        // An old kernel: no CapAmb nor NoNewPrivs lines.
        let root = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nCapInh:\t0000000000000400\n\
            CapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
        let got = parse_status(root).unwrap();
        assert_eq!((got.uid, got.gid, got.groups.len(), got.no_new_privs), (0, 0, 0, false));
        assert_eq!((got.cap_bounding, got.cap_inheritable, got.cap_ambient), (0x1ffffffffff, 0x400, 0));

        let cases = [
            (STATUS.replace("Uid:", "Xid:"), "Uid"),
            (STATUS.replace("Gid:\t2000\t2001\t2001\t2001", "Gid:\t2000"), "Gid"),
            (STATUS.replace("Groups:\t10", "Groups:\tx"), "Groups"),
            (STATUS.replace("CapBnd:\t00000000a80425fb", "CapBnd:\tzz"), "CapBnd"),
            (STATUS.replace("CapInh", "CapXyz"), "CapInh"),
            (STATUS.replace("CapEff", "CapXyz"), "CapEff"),
        ];
        for (text, missing) in cases {
            assert_eq!(parse_status(&text), Err(missing), "{missing}");
        }
    }

    #[test]
    fn environ_entries() {
        let os = |s: &str| OsString::from(s);
        type Vars = Vec<(OsString, OsString)>;
        let cases: [(&[u8], Vars); 4] = [
            (b"", vec![]),
            (b"PATH=/bin\0A=1\0", vec![(os("PATH"), os("/bin")), (os("A"), os("1"))]),
            (b"EMPTY=\0X=a=b\0", vec![(os("EMPTY"), os("")), (os("X"), os("a=b"))]),
            (b"noequals\0=novalue\0B=2", vec![(os("B"), os("2"))]),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_environ(bytes), want, "{bytes:?}");
        }
    }
}
