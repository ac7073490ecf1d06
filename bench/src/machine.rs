//! Facts about the machine for the report header: numbers from a 2-core
//! laptop and a 64-core server are not comparable, so the report says which.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Cores this process may use (what `nproc` prints: honours affinity
    /// masks and cgroup quotas).
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| std::env::consts::OS.to_owned());
        Self {
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".to_owned()),
            kernel,
        }
    }
}

/// First `model name` in /proc/cpuinfo (x86); `Model`/`Hardware` on some ARM
/// kernels that have no per-core model name.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    for key in ["model name", "Model", "Hardware"] {
        let found = cpuinfo.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key && !v.trim().is_empty()).then(|| v.trim().to_owned())
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_x86_model_name() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
    }

    #[test]
    fn falls_back_to_arm_fields() {
        let info = "processor\t: 0\nBogoMIPS\t: 48.00\n\nModel\t\t: Raspberry Pi 4 Model B\n";
        assert_eq!(cpu_model(info).as_deref(), Some("Raspberry Pi 4 Model B"));
    }

    #[test]
    fn unknown_when_absent() {
        assert_eq!(cpu_model("processor : 0\n"), None);
    }
}
