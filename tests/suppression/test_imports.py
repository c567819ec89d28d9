"""Bulk imports: upload, a real worker, job state, rejects, convergence, per-account order."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.suppression import worker
from services.suppression.config import Config
from services.suppression.model import Scope
from services.suppression.store import Store
from tests.suppression.conftest import BASE, Api, error_messages

IMPORTS = f"{BASE}/imports"


@pytest.fixture(scope="module")
async def running_worker(config: Config) -> AsyncIterator[None]:
    """Two workers, as in production: they share the queue."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(config, stop)) for _ in range(2)]
    yield
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def submit(api: Api, body: bytes, ctype: str = "text/csv",
                 params: dict[str, str] | None = None) -> Any:
    resp = await api.call("POST", IMPORTS, content=body, headers={"Content-Type": ctype},
                          params=params)
    assert resp.status_code == 202, resp.text
    assert resp.headers["location"] == f"{IMPORTS}/{resp.json()['results']['id']}"
    return resp.json()["results"]


async def finished(api: Api, job_id: str) -> dict[str, Any]:
    """Poll the job until it ends (a hang trips pytest's timeout)."""
    while True:
        resp = await api.call("GET", f"{IMPORTS}/{job_id}")
        assert resp.status_code == 200
        job: dict[str, Any] = resp.json()["results"]
        if job["state"] in ("done", "failed"):
            return job
        await asyncio.sleep(0.02)


async def run_import(api: Api, body: bytes, ctype: str = "text/csv") -> dict[str, Any]:
    job = await submit(api, body, ctype)
    return await finished(api, job["id"])


async def rejects(api: Api, job_id: str) -> str:
    resp = await api.call("GET", f"{IMPORTS}/{job_id}/rejects")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    return resp.text


CSV_WITH_BAD_ROWS = (
    b"recipient,transactional,non_transactional,description\r\n"
    b"ok1@example.com,true,false,first\r\n"
    b"ok2@Example.COM,false,true,\"quoted, with comma\"\r\n"
    b"both@example.com,true,true,two records\r\n"
    b"no-at-sign,true,false,bad address\r\n"
    b"notype@example.com,false,false,no type\r\n"
    b"\r\n"
    b"multi@example.com,true,false,\"line one\nline two\"\r\n"
    b"extra@example.com,true,false,x,surplus\r\n"
)


async def test_a_csv_import_writes_good_rows_and_reports_bad_ones(running_worker: None,
                                                                 api: Api) -> None:
    job = await run_import(api, CSV_WITH_BAD_ROWS)
    assert job["state"] == "done", job
    assert (job["rows_read"], job["rows_written"], job["rows_rejected"]) == (7, 4, 3)
    assert job["progress"] == 1.0 and job["bytes_read"] == job["bytes_total"]
    assert job["bytes_total"] == len(CSV_WITH_BAD_ROWS)
    report = await rejects(api, job["id"])
    lines = report.splitlines()
    assert lines[0] == "line,reason,row"
    assert lines[1].startswith("5,Recipient must contain exactly one @,")
    assert lines[2].startswith("6,Must supply a suppression type,")
    assert "Row has 5 fields, the header 4" in lines[3]
    found = (await api.get("both@example.com")).json()["results"]
    assert {r["type"] for r in found} == {"transactional", "non_transactional"}
    (multi,) = (await api.get("multi@example.com")).json()["results"]
    assert multi["description"] == "line one\nline two"
    (ok2,) = (await api.get("ok2@example.com")).json()["results"]
    assert (ok2["type"], ok2["description"]) == ("non_transactional", "quoted, with comma")


async def test_a_csv_with_a_type_column_and_list_ids_imports(running_worker: None,
                                                             api: Api) -> None:
    body = (b"\xef\xbb\xbfEmail,Type,List_ID,Description\n"
            b"a@example.com,transactional,,plain\n"
            b"b@example.com,non_transactional,news,on a list\n"
            b"c@example.com,marketing,,bad type\n"
            b"d@example.com,transactional,bad list,bad list id\n")
    job = await run_import(api, body)
    assert (job["rows_written"], job["rows_rejected"]) == (2, 2)
    (b,) = (await api.get("b@example.com")).json()["results"]
    assert b["list_id"] == "news"


async def test_an_ndjson_import_takes_sparkposts_fields(running_worker: None, api: Api) -> None:
    lines = [
        {"recipient": "n1@example.com", "type": "transactional", "description": "d"},
        {"email": "n2@example.com", "transactional": True, "non_transactional": True},
        {"recipient": "n3@example.com", "non_transactional": True, "list_id": "promo"},
        "not an object",
        {"recipient": "n4@example.com"},
    ]
    body = "\n".join(json.dumps(x) for x in lines).encode() + b"\n{broken json\n"
    job = await run_import(api, body, "application/x-ndjson")
    assert (job["rows_read"], job["rows_written"], job["rows_rejected"]) == (6, 3, 3)
    assert len((await api.get("n2@example.com")).json()["results"]) == 2
    report = (await rejects(api, job["id"])).splitlines()
    assert [r.split(",")[1] for r in report[1:]] == [
        "Line is not a JSON object", "Must supply a suppression type", "Line is not valid JSON"]


async def test_a_large_import_crosses_chunks_and_batches(running_worker: None,
                                                         api: Api) -> None:
    # The test config stores 4 KB chunks and merges 1,000 rows a batch.
    rows = [f"user{i}@big.example.com,transactional,,\"row {i}, quoted\"" for i in range(5000)]
    body = ("recipient,type,list_id,description\n" + "\n".join(rows)).encode()
    job = await run_import(api, body)
    assert (job["rows_read"], job["rows_written"], job["rows_rejected"]) == (5000, 5000, 0)
    resp = await api.search(domain="big.example.com", per_page=1)
    assert resp.json()["total_count"] == 5000
    (last,) = (await api.get("user4999@big.example.com")).json()["results"]
    assert last["description"] == "row 4999, quoted"


async def test_reimporting_the_same_file_converges_to_the_same_rows(running_worker: None,
                                                                   api: Api) -> None:
    first = await run_import(api, CSV_WITH_BAD_ROWS)
    before = (await api.search(sort="asc")).json()["results"]
    second = await run_import(api, CSV_WITH_BAD_ROWS)
    after = (await api.search(sort="asc")).json()["results"]
    assert before == after  # same rows, same values, not even `updated` moves
    assert (first["rows_written"], first["rows_rejected"]) == (
        second["rows_written"], second["rows_rejected"])


async def test_an_accounts_jobs_run_in_order(running_worker: None, api: Api) -> None:
    jobs = []
    for i in range(3):
        body = f"recipient,type,description\nseq@example.com,transactional,job {i}\n".encode()
        jobs.append(await submit(api, body))
    done = [await finished(api, j["id"]) for j in jobs]
    assert all(j["state"] == "done" for j in done)
    for earlier, later in itertools.pairwise(done):
        assert later["started"] >= earlier["finished"]
    (record,) = (await api.get("seq@example.com")).json()["results"]
    assert record["description"] == "job 2"


async def test_imports_go_to_the_subaccount_of_the_context(running_worker: None,
                                                           api: Api) -> None:
    job = await run_import(api.as_sub(6), b"recipient,type\nsub@example.com,transactional\n")
    assert job["subaccount_id"] == 6
    assert (await api.as_sub(6).get("sub@example.com")).status_code == 200
    assert (await api.as_sub(0).get("sub@example.com")).status_code == 404
    # A job belongs to its subaccount: another subaccount cannot see it.
    resp = await api.as_sub(7).call("GET", f"{IMPORTS}/{job['id']}")
    assert resp.status_code == 404


async def test_another_account_cannot_see_a_job_or_its_rejects(running_worker: None,
                                                               api: Api, other_api: Api) -> None:
    job = await run_import(api, CSV_WITH_BAD_ROWS)
    assert (await other_api.call("GET", f"{IMPORTS}/{job['id']}")).status_code == 404
    assert (await other_api.call("GET", f"{IMPORTS}/{job['id']}/rejects")).status_code == 404
    listed = (await other_api.call("GET", IMPORTS)).json()["results"]
    assert all(j["id"] != job["id"] for j in listed)
    mine = (await api.call("GET", IMPORTS)).json()["results"]
    assert [j["id"] for j in mine] == [job["id"]]


async def test_the_format_can_be_named_by_parameter(running_worker: None, api: Api) -> None:
    job = await submit(api, b'{"recipient": "p@example.com", "type": "transactional"}\n',
                       ctype="application/octet-stream", params={"format": "ndjson"})
    assert (await finished(api, job["id"]))["rows_written"] == 1


@pytest.mark.parametrize(("body", "ctype", "status", "message"), [
    (b"recipient,type\n", "application/pdf", 415, "Unsupported Media Type"),
    (b"address,type\na@example.com,transactional\n", "text/csv", 422,
     "CSV header has no recipient column"),
    (b"", "text/csv", 422, "The file is empty"),
])
async def test_uploads_that_cannot_be_imported_are_refused(api: Api, body: bytes, ctype: str,
                                                           status: int, message: str) -> None:
    resp = await api.call("POST", IMPORTS, content=body, headers={"Content-Type": ctype})
    assert resp.status_code == status
    assert error_messages(resp) == [message]
    assert (await api.call("GET", IMPORTS)).json()["results"] == []


async def test_unknown_jobs_are_404(api: Api) -> None:
    assert (await api.call("GET", f"{IMPORTS}/999999999")).status_code == 404
    assert (await api.call("GET", f"{IMPORTS}/999999999/rejects")).status_code == 404


async def test_a_job_whose_worker_died_is_taken_up_again(running_worker: None, api: Api,
                                                        store: Store) -> None:
    body = b"recipient,type\nrevived@example.com,transactional\n"
    # Stage a job as if a worker had claimed it and died: running, its lease lapsed.
    job_id = await store.create_job(Scope(api.account_id, None), "csv")
    await store.add_chunk(job_id, 0, body)
    await store.pool.execute(
        """UPDATE suppression.import_jobs SET state = 'running', attempts = 1,
               queued = now(), bytes_total = $2, lease_until = now() - interval '1 second'
           WHERE id = $1""", job_id, len(body))
    job = await finished(api, str(job_id))
    assert (job["state"], job["attempts"], job["rows_written"]) == ("done", 2, 1)
    assert (await api.get("revived@example.com")).status_code == 200


async def test_a_job_with_a_live_lease_is_left_to_its_worker(running_worker: None, api: Api,
                                                            store: Store) -> None:
    job_id = await store.create_job(Scope(api.account_id, None), "csv")
    await store.pool.execute(
        """UPDATE suppression.import_jobs SET state = 'running', queued = now(),
               lease_until = now() + interval '1 hour' WHERE id = $1""", job_id)
    # A later job of the same account waits behind it; another account's job does not.
    later = await submit(api, b"recipient,type\nlater@example.com,transactional\n")
    other = Api(api.clients, api.account_id + 1)
    done = await finished(other, (await submit(other, b"recipient,type\no@example.com,"
                                                      b"transactional\n"))["id"])
    assert done["state"] == "done"
    resp = await api.call("GET", f"{IMPORTS}/{later['id']}")
    assert resp.json()["results"]["state"] == "queued"
    await store.pool.execute(
        "UPDATE suppression.import_jobs SET state = 'done' WHERE id = $1", job_id)
    assert (await finished(api, later["id"]))["state"] == "done"


async def test_a_queued_job_can_be_cancelled_and_only_a_queued_one(running_worker: None,
                                                                  api: Api,
                                                                  store: Store) -> None:
    blocker = await store.create_job(Scope(api.account_id, None), "csv")
    await store.pool.execute(
        """UPDATE suppression.import_jobs SET state = 'running', queued = now(),
               lease_until = now() + interval '1 hour' WHERE id = $1""", blocker)
    waiting = await submit(api, b"recipient,type\ncancelled@example.com,transactional\n")
    resp = await api.call("DELETE", f"{IMPORTS}/{waiting['id']}")
    assert resp.status_code == 204
    job = (await api.call("GET", f"{IMPORTS}/{waiting['id']}")).json()["results"]
    assert job["state"] == "cancelled"
    resp = await api.call("DELETE", f"{IMPORTS}/{waiting['id']}")
    assert resp.status_code == 409
    assert error_messages(resp) == ["Import job is cancelled"]
    resp = await api.call("DELETE", f"{IMPORTS}/{blocker}")
    assert resp.status_code == 409
    assert error_messages(resp) == ["Import job is running"]
    assert (await api.call("DELETE", f"{IMPORTS}/999999999")).status_code == 404
    await store.pool.execute(
        "UPDATE suppression.import_jobs SET state = 'done' WHERE id = $1", blocker)
    assert (await api.get("cancelled@example.com")).status_code == 404


async def test_a_stalled_upload_is_failed_by_the_workers(running_worker: None, api: Api,
                                                        store: Store) -> None:
    job_id = await store.create_job(Scope(api.account_id, None), "csv")
    await store.add_chunk(job_id, 0, b"recipient,type\n")
    await store.pool.execute(
        "UPDATE suppression.import_jobs SET touched = now() - interval '1 hour' WHERE id = $1",
        job_id)
    job = await finished(api, str(job_id))
    assert job["state"] == "failed"
    assert job["error"] == "The upload stalled and was abandoned"
    assert await store.pool.fetchval(
        "SELECT count(*) FROM suppression.import_chunks WHERE job_id = $1", job_id) == 0
