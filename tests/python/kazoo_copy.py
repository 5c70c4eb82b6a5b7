"""A straightforward kazoo copy of a ZooKeeper subtree, the anchor for `zk-bench`: each
node's data and ACL read and created on the target, parents first, one request at a time.

    kazoo_copy.py SOURCE_HOSTS TARGET_HOSTS ROOT SECONDS

Prints `copied N nodes in S s` (stopping after SECONDS, if it gets that far).
"""

import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError


def main():
    source_hosts, target_hosts, root, limit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    source = KazooClient(hosts=source_hosts, timeout=10)
    target = KazooClient(hosts=target_hosts, timeout=10)
    source.start(timeout=15)
    target.start(timeout=15)
    started = time.monotonic()
    copied = 0
    queue = [root]
    while queue and time.monotonic() - started < limit:
        path = queue.pop()
        data, _ = source.get(path)
        acl, _ = source.get_acls(path)
        try:
            target.create(path, data, acl=acl, makepath=True)
        except NodeExistsError:
            target.set(path, data)
        copied += 1
        queue.extend(f"{path}/{child}" for child in source.get_children(path))
    print(f"copied {copied} nodes in {time.monotonic() - started:.3f} s")
    source.stop()
    target.stop()


if __name__ == "__main__":
    main()
