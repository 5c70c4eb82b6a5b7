//! Containers and the cgroups that tie processes and connections to them.

use std::collections::HashMap;

use crate::model::Container;

/// Length of a Docker container id in hex digits.
const CONTAINER_ID_LEN: usize = 64;

/// The container id inside a cgroup path, as the cgroupfs (`/docker/<id>`) and systemd
/// (`/system.slice/docker-<id>.scope`) drivers, containerd and CRI-O name them.
pub fn container_id_in_cgroup_path(path: &str) -> Option<&str> {
    path.split('/').rev().find_map(|segment| {
        let segment = segment.strip_suffix(".scope").unwrap_or(segment);
        let id = segment.rsplit(['-', ':']).next()?;
        (id.len() == CONTAINER_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    })
}

/// Containers by id, and cgroup v2 ids by path.
#[derive(Debug)]
pub struct ContainerTable {
    containers: HashMap<String, Container>,
    cgroup_paths: HashMap<u64, String>,
    max_containers: usize,
    max_cgroups: usize,
}

impl ContainerTable {
    pub fn new(max_containers: usize, max_cgroups: usize) -> Self {
        Self {
            containers: HashMap::new(),
            cgroup_paths: HashMap::new(),
            max_containers,
            max_cgroups,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Container> {
        self.containers.values()
    }

    pub fn get(&self, id: &str) -> Option<&Container> {
        self.containers.get(id)
    }

    /// Records a container. Returns false when the table is full.
    pub fn updated(&mut self, container: Container) -> bool {
        if !self.containers.contains_key(&container.id)
            && self.containers.len() >= self.max_containers
        {
            return false;
        }
        self.containers.insert(container.id.clone(), container);
        true
    }

    pub fn removed(&mut self, id: &str) {
        self.containers.remove(id);
    }

    /// Replaces all containers. Returns how many did not fit.
    pub fn resync(&mut self, containers: Vec<Container>) -> usize {
        self.containers.clear();
        containers
            .into_iter()
            .filter(|c| !self.updated(c.clone()))
            .count()
    }

    /// Records the path of a cgroup id. Returns false when the table is full.
    pub fn cgroup_path(&mut self, id: u64, path: String) -> bool {
        if !self.cgroup_paths.contains_key(&id) && self.cgroup_paths.len() >= self.max_cgroups {
            return false;
        }
        self.cgroup_paths.insert(id, path);
        true
    }

    pub fn path_of_cgroup(&self, id: u64) -> Option<&str> {
        self.cgroup_paths.get(&id).map(String::as_str)
    }

    pub fn knows_cgroup(&self, id: u64) -> bool {
        self.cgroup_paths.contains_key(&id)
    }

    /// The known container whose cgroup is one of `paths`.
    pub fn container_of_paths<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> Option<&str> {
        paths
            .into_iter()
            .filter_map(container_id_in_cgroup_path)
            .find_map(|id| self.containers.get(id).map(|c| c.id.as_str()))
    }

    /// The known container of a cgroup v2 id.
    pub fn container_of_cgroup(&self, id: u64) -> Option<&str> {
        self.container_of_paths(self.path_of_cgroup(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4fb82e3c8dd38c38fc362ac018ade180b616ec4d9ecd9ef80cf028d3efbe8df1";

    #[test]
    fn container_ids_are_found_in_every_driver_layout() {
        for path in [
            format!("/docker/{ID}"),
            format!("/system.slice/docker-{ID}.scope"),
            format!("/kubepods/besteffort/pod1234/cri-containerd-{ID}.scope"),
            format!("/kubepods.slice/crio-{ID}.scope/container"),
        ] {
            assert_eq!(container_id_in_cgroup_path(&path), Some(ID), "{path}");
        }
        assert_eq!(
            container_id_in_cgroup_path("/user.slice/session-1.scope"),
            None
        );
        assert_eq!(container_id_in_cgroup_path("/"), None);
    }

    #[test]
    fn processes_map_to_known_containers_only() {
        let mut table = ContainerTable::new(4, 4);
        assert!(table.cgroup_path(9, format!("/docker/{ID}")));
        assert_eq!(table.container_of_cgroup(9), None);
        table.updated(Container {
            id: ID.into(),
            name: "web".into(),
            image: "busybox".into(),
            labels: Default::default(),
            state: "running".into(),
            pid: Some(1),
            cgroup: None,
            ports: vec![],
            networks: vec![],
        });
        assert_eq!(table.container_of_cgroup(9), Some(ID));
        assert_eq!(
            table.container_of_paths([format!("/docker/{ID}").as_str()]),
            Some(ID)
        );
    }
}
