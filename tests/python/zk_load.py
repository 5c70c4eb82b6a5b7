"""Random ZooKeeper writes through kazoo, for the sync tests and benchmarks.

    zk_load.py HOSTS ROOT ops COUNT SEED      random creates, sets and deletes under ROOT
    zk_load.py HOSTS ROOT fill COUNT          COUNT nodes under ROOT (100 per parent)
    zk_load.py HOSTS ROOT set PATH VALUE      one write
    zk_load.py HOSTS ROOT get PATH            print one node's data

Some nodes get a second ACL and some are sequential, so copies must carry both.
"""

import random
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError, NotEmptyError
from kazoo.security import make_acl

OPEN = [make_acl("world", "anyone", all=True)]
# A second ACL, so copies must carry ACLs. It keeps ADMIN for anyone: a node whose ACL
# denies ADMIN cannot have its ACL changed by any client but a super user.
SHARED = [make_acl("world", "anyone", all=True), make_acl("ip", "127.0.0.1", read=True)]


def ops(zk, root, count, seed):
    rng = random.Random(seed)
    zk.ensure_path(root)
    for i in range(count):
        path = f"{root}/n{rng.randrange(20)}" + (f"/c{rng.randrange(10)}" if rng.random() < 0.5 else "")
        kind = rng.random()
        value = f"{seed}-{i}".encode()
        try:
            if kind < 0.45:
                acl = SHARED if rng.random() < 0.2 else OPEN
                zk.create(path, value, acl=acl, makepath=True)
            elif kind < 0.85:
                zk.set(path, value)
            elif kind < 0.95:
                zk.delete(path, recursive=True)
            else:
                zk.create(f"{root}/queue/item-", value, sequence=True, makepath=True)
        except (NodeExistsError, NoNodeError, NotEmptyError):
            pass


def fill(zk, root, count):
    zk.ensure_path(root)
    parents = (count + 99) // 100
    done = 0
    for p in range(parents):
        t = zk.transaction()
        t.create(f"{root}/p{p}", b"parent")
        for c in range(min(100, count - done)):
            t.create(f"{root}/p{p}/c{c}", b"x" * 64)
            done += 1
        t.commit()


def main():
    hosts, root, command = sys.argv[1], sys.argv[2], sys.argv[3]
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=15)
    try:
        if command == "ops":
            ops(zk, root, int(sys.argv[4]), int(sys.argv[5]))
        elif command == "fill":
            fill(zk, root, int(sys.argv[4]))
        elif command == "set":
            zk.ensure_path(sys.argv[4])
            zk.set(sys.argv[4], sys.argv[5].encode())
        elif command == "get":
            print(zk.get(sys.argv[4])[0].decode())
    finally:
        zk.stop()


if __name__ == "__main__":
    main()
