"""The traffic mix. Request shares with the default weights and waits (17:2:1 users): about
90% from the sending pipeline, the rest from API users and list managers.

Each class's tasks carry its tag (`sending`, `api`, `lists`), so `--tags sending` runs one
class; so does naming the class on the command line (`... Sender`)."""

from __future__ import annotations

import csv
import io
import random
import time
from typing import Any

from locust import FastHttpUser, between, tag, task

from loadtest import state
from loadtest.tenants import BASE, Tenant
from loadtest.verdict import judge

TYPES = ("transactional", "non_transactional")


class PortcullisUser(FastHttpUser):
    abstract = True
    host = "http://127.0.0.1:8080"
    tenant: Tenant

    def on_start(self) -> None:
        self.rng = random.Random()
        self.tenant = state.tenants.pick(self.rng)

    def auth(self, key: str, subaccount: int | None = None) -> dict[str, str]:
        out = {"Authorization": key}
        if subaccount is not None:
            out["X-MSYS-SUBACCOUNT"] = str(subaccount)
        return out


class Sender(PortcullisUser):
    """The sending pipeline: is this recipient suppressed? One at a time, or in batches.
    Half the recipients asked about are suppressed."""

    weight = 17
    wait_time = between(0.1, 0.5)

    def recipient(self) -> str:
        if self.rng.random() < 0.5:
            return self.tenant.seeded_recipient(self.rng)
        return self.tenant.unknown_recipient(self.rng)

    @tag("sending")
    @task(9)
    def single_lookup(self) -> None:
        name = f"GET {BASE}/{{recipient}}"
        with self.client.get(f"{BASE}/{self.recipient()}", name=name, catch_response=True,
                             headers=self.auth(self.tenant.sender_key)) as resp:
            judge(resp, name, 200, 404)

    @tag("sending")
    @task(1)
    def batch_lookup(self) -> None:
        name = f"POST {BASE}/lookup"
        size = state.options("batch_size", 200)
        body = {"recipients": [self.recipient() for _ in range(size)]}
        with self.client.post(f"{BASE}/lookup", json=body, name=name, catch_response=True,
                              headers=self.auth(self.tenant.sender_key)) as resp:
            if judge(resp, name, 200) and resp.json()["results"]["checked"] != size:
                resp.failure(f"checked {resp.json()['results']['checked']} of {size}")


class ApiUser(PortcullisUser):
    """Scripts and people on the API: search, page through with cursors, edit entries."""

    weight = 2
    wait_time = between(0.5, 1.5)

    @tag("api")
    @task(3)
    def search(self) -> None:
        name = f"GET {BASE}?domain"
        params = {"domain": self.tenant.domain(self.rng), "per_page": 20}
        with self.client.get(BASE, params=params, name=name, catch_response=True,
                             headers=self.auth(self.tenant.manage_key)) as resp:
            judge(resp, name, 200)

    @tag("api")
    @task(2)
    def page_through(self) -> None:
        """Three pages of a domain by cursor, following the `next` links."""
        url: str | None = (f"{BASE}?cursor=initial&per_page=10&domain="
                           f"{self.tenant.domain(self.rng)}")
        for _ in range(3):
            if url is None:
                break
            name = f"GET {BASE}?cursor"
            with self.client.get(url, name=name, catch_response=True,
                                 headers=self.auth(self.tenant.manage_key)) as resp:
                if not judge(resp, name, 200):
                    return
                links = {x["rel"]: x["href"] for x in resp.json()["links"]}
            url = links.get("next")

    @tag("api")
    @task(2)
    def edit(self) -> None:
        """Put an entry (in the primary account or the subaccount), read it, delete it."""
        sub = self.rng.random() < 0.5
        key = self.tenant.sub_key if sub else self.tenant.manage_key
        recipient = f"edit{self.rng.randrange(10**12)}@{self.tenant.domain(self.rng)}"
        body = {"type": self.rng.choice(TYPES), "description": "loadtest edit"}
        name = f"PUT {BASE}/{{recipient}}"
        with self.client.put(f"{BASE}/{recipient}", json=body, name=name,
                             catch_response=True, headers=self.auth(key)) as resp:
            if not judge(resp, name, 200):
                return
        name = f"GET {BASE}/{{recipient}} (edited)"
        with self.client.get(f"{BASE}/{recipient}", name=name, catch_response=True,
                             headers=self.auth(key)) as resp:
            judge(resp, name, 200)
        name = f"DELETE {BASE}/{{recipient}}"
        with self.client.delete(f"{BASE}/{recipient}", name=name, catch_response=True,
                                headers=self.auth(key)) as resp:
            judge(resp, name, 204)


class ListManager(PortcullisUser):
    """Bulk work: upload a CSV through an import job, wait for it, download an export."""

    weight = 1
    wait_time = between(1, 3)

    def upload(self) -> None:
        rows = state.options("import_rows", 1000)
        domain = self.tenant.domain(self.rng)
        batch = self.rng.randrange(10**12)
        text = io.StringIO()
        out = csv.writer(text)
        out.writerow(["recipient", "type", "description"])
        for i in range(rows):
            out.writerow([f"import{batch}-{i}@{domain}", TYPES[i % 2], "loadtest import"])
        name = f"POST {BASE}/imports"
        with self.client.post(f"{BASE}/imports", data=text.getvalue(), name=name,
                              catch_response=True,
                              headers=self.auth(self.tenant.manage_key)
                              | {"Content-Type": "text/csv"}) as resp:
            if not judge(resp, name, 202):
                return
            job_id = resp.json()["results"]["id"]
        self.wait_for_job(job_id, rows)

    def wait_for_job(self, job_id: Any, rows: int) -> None:
        name = f"GET {BASE}/imports/{{id}}"
        deadline = time.monotonic() + 120
        while True:
            with self.client.get(f"{BASE}/imports/{job_id}", name=name, catch_response=True,
                                 headers=self.auth(self.tenant.manage_key)) as resp:
                if not judge(resp, name, 200):
                    return
                job = resp.json()["results"]
                if job["state"] == "done":
                    if job["rows_written"] != rows:
                        resp.failure(f"import wrote {job['rows_written']} of {rows} rows")
                    return
                if job["state"] in ("failed", "cancelled"):
                    resp.failure(f"import {job['state']}: {job.get('error')}")
                    return
                if time.monotonic() > deadline:
                    resp.failure(f"import still {job['state']} after 120 s")
                    return
            time.sleep(0.25)  # gevent-patched: yields to the other users

    def download(self) -> None:
        name = f"GET {BASE}/export"
        params = {"format": "csv", "domain": self.tenant.domain(self.rng)}
        with self.client.get(f"{BASE}/export", params=params, name=name, catch_response=True,
                             headers=self.auth(self.tenant.manage_key)) as resp:
            if judge(resp, name, 200) and not resp.text.startswith("recipient,"):
                resp.failure("export without its CSV header")

    @tag("lists")
    @task
    def upload_then_download(self) -> None:
        self.upload()
        self.download()
