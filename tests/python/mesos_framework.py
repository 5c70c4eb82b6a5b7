"""A pymesos framework driven by the Rust tests: commands arrive on stdin as JSON lines,
events leave on stdout as JSON lines.

Commands: {"cmd": "launch", "tasks": [{"id", "node", "cpus", "mem", "shell"? | "image"?,
"ports"?}]}, {"cmd": "kill", "id"}, {"cmd": "reconcile"}, {"cmd": "raw", "call": {...}}
(a call sent as is), {"cmd": "stop"}.
Events: {"event": "subscribed", "framework_id"}, {"event": "offer", "agent", "node"},
{"event": "update", "id", "state", "reason", "message", "agent"}, {"event": "error", ...}.
"""

import json
import sys
import threading

from pymesos import MesosSchedulerDriver, Scheduler, encode_data  # noqa: F401

LOCK = threading.Lock()
PENDING = []


def emit(**event):
    with LOCK:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def scalar(resources, name):
    return sum(r["scalar"]["value"] for r in resources if r["name"] == name and r.get("type", "SCALAR") == "SCALAR")


def ports(resources):
    out = []
    for r in resources:
        if r["name"] == "ports":
            for rng in r["ranges"]["range"]:
                out.extend(range(rng["begin"], rng["end"] + 1))
    return out


def attribute(offer, name):
    for a in offer.get("attributes", []):
        if a["name"] == name:
            return a.get("text", {}).get("value") or str(a.get("scalar", {}).get("value"))
    return None


class Framework(Scheduler):
    def registered(self, driver, framework_id, master_info):
        emit(event="subscribed", framework_id=framework_id["value"])

    def reregistered(self, driver, master_info):
        emit(event="resubscribed")

    def resourceOffers(self, driver, offers):
        for offer in offers:
            node = attribute(offer, "node")
            emit(event="offer", agent=offer["agent_id"]["value"], node=node)
            cpus, mem = scalar(offer["resources"], "cpus"), scalar(offer["resources"], "mem")
            free_ports = ports(offer["resources"])
            tasks = []
            with LOCK:
                for spec in list(PENDING):
                    if spec.get("node") not in (None, node):
                        continue
                    want_ports = spec.get("ports", 0)
                    if spec["cpus"] > cpus + 1e-9 or spec["mem"] > mem + 1e-9 or want_ports > len(free_ports):
                        continue
                    cpus -= spec["cpus"]
                    mem -= spec["mem"]
                    taken, free_ports = free_ports[:want_ports], free_ports[want_ports:]
                    tasks.append(task_info(spec, offer, taken))
                    PENDING.remove(spec)
            if tasks:
                driver.launchTasks(offer["id"], tasks, {"refuse_seconds": 1})
            else:
                driver.declineOffer(offer["id"], {"refuse_seconds": 1})

    def statusUpdate(self, driver, update):
        emit(event="update", id=update["task_id"]["value"], state=update["state"],
             reason=update.get("reason"), message=update.get("message"),
             agent=update.get("agent_id", {}).get("value"))

    def offerRescinded(self, driver, offer_id):
        emit(event="rescind", offer=offer_id["value"])

    def error(self, driver, message):
        emit(event="error", message=message)


def task_info(spec, offer, taken_ports):
    resources = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": spec["cpus"]}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": spec["mem"]}},
    ]
    if taken_ports:
        resources.append({"name": "ports", "type": "RANGES",
                          "ranges": {"range": [{"begin": p, "end": p} for p in taken_ports]}})
    task = {
        "task_id": {"value": spec["id"]},
        "agent_id": offer["agent_id"],
        "name": spec["id"],
        "resources": resources,
    }
    if "image" in spec:
        task["container"] = {"type": "DOCKER", "docker": {
            "image": spec["image"], "network": "BRIDGE",
            "port_mappings": [{"host_port": p, "container_port": 8080, "protocol": "tcp"} for p in taken_ports]}}
        if "shell" in spec:
            task["command"] = {"value": spec["shell"], "shell": True}
    else:
        task["command"] = {"value": spec["shell"], "shell": True}
    return task


def main():
    master = sys.argv[1]  # HOST:PORT or zk://...; an optional second argument: a framework id
    framework = {"user": "root", "name": "strata-compat", "failover_timeout": 3600,
                 "hostname": "localhost"}
    if len(sys.argv) > 2:
        # Fail over to an existing framework (its tasks keep running).
        framework["id"] = {"value": sys.argv[2]}
    driver = MesosSchedulerDriver(Framework(), framework, master, use_addict=False)
    driver.start()
    for line in sys.stdin:
        command = json.loads(line)
        cmd = command["cmd"]
        if cmd == "launch":
            with LOCK:
                PENDING.extend(command["tasks"])
            driver.reviveOffers()
        elif cmd == "kill":
            driver.killTask({"value": command["id"]})
        elif cmd == "reconcile":
            driver.reconcileTasks([])
        elif cmd == "stop":
            break
    driver.stop(failover=True)
    driver.join()


if __name__ == "__main__":
    main()
