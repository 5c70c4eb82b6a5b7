//! The cgroup v2 hierarchy: where it is mounted (the byte counters attach there) and which
//! path a cgroup id names (eBPF reports ids; containers are recognised by paths).

use std::{
    collections::HashSet,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Where the cgroup v2 hierarchy is mounted: `/sys/fs/cgroup` on unified hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo_cgroup2(&mountinfo)
}

/// The first cgroup2 mount point in a `/proc/<pid>/mountinfo` text.
fn mountinfo_cgroup2(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fstype = after.split_whitespace().next()?;
        (fstype == "cgroup2").then(|| before.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// Finds the paths (relative to the mount, starting with `/`) of the cgroups in `wanted`,
/// whose v2 id is the inode number of their directory. Stops walking once all are found.
pub fn resolve(mount: &Path, wanted: &HashSet<u64>) -> Vec<(u64, String)> {
    let mut found = Vec::new();
    let mut stack = vec![mount.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if found.len() == wanted.len() {
            break;
        }
        let Ok(meta) = fs::metadata(&dir) else {
            continue;
        };
        if wanted.contains(&meta.ino()) {
            let relative = dir.strip_prefix(mount).unwrap_or(&dir);
            found.push((meta.ino(), format!("/{}", relative.display())));
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        stack.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_in_hybrid_and_unified_layouts() {
        let hybrid = "25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mountinfo_cgroup2(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mountinfo_cgroup2(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            mountinfo_cgroup2("1 0 8:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }

    #[test]
    fn ids_resolve_to_paths_by_directory_inode() {
        let root = std::env::temp_dir().join(format!("strata-cgroups-{}", std::process::id()));
        let child = root.join("docker").join("abc");
        fs::create_dir_all(&child).expect("create test tree");
        let id = fs::metadata(&child).expect("stat").ino();
        let found = resolve(&root, &HashSet::from([id]));
        fs::remove_dir_all(&root).expect("clean up");
        assert_eq!(found, [(id, "/docker/abc".to_owned())]);
    }
}
