"""A fake GitHub REST server on 127.0.0.1 backed by a real bare git repository.

It serves exactly the Git Data / commits / pulls endpoints that GitHubRepo calls
through PyGithub, writing real git objects, so `git log` on the bare repository
shows every commit made through the API. Pull requests live in memory.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playbook_sync.providers.localgit import LocalGitRepo, init_repo
from tests.fakes.loopback import LoopbackServer

_SHA = re.compile(r"^[0-9a-f]{40}$")


class ApiError(Exception):
    """An HTTP error answer: status and GitHub-shaped message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Fault:
    needle: str
    status: int
    count: int
    method: str | None
    after: bool  # do the work, then answer with the error (a lost response)
    message: str = "Server Error (injected)"


class FakeGitHub(LoopbackServer):
    """Fake api.github.com for one repository `owner/name`, stored in a bare repo."""

    def __init__(
        self,
        bare_path: Path,
        full_name: str = "acme/playbooks",
        token: str | None = "test-token",
        branch: str = "main",
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        self.full_name = full_name
        self.token = token
        self.branch = branch
        self.git = (
            LocalGitRepo(bare_path, branch)
            if (bare_path / "HEAD").exists()
            else init_repo(bare_path, files or {}, branch, bare=True)
        )
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.pulls: list[dict] = []  # pull requests, in memory (number = index + 1)
        self._faults: list[_Fault] = []
        self._hooks: list[tuple[str, str | None, Callable[[], None]]] = []
        self._lock = threading.Lock()  # one request at a time: ref updates are CAS
        super().__init__(_Handler)

    # -- test knobs ------------------------------------------------------------

    def fail_next(
        self,
        path_substring: str,
        status: int = 500,
        count: int = 1,
        method: str | None = None,
        *,
        after: bool = False,
        message: str = "Server Error (injected)",
    ) -> None:
        """Answer the next `count` requests whose path contains path_substring with status (and message).

        With after=True the request is carried out first, as when a proxy loses the answer.
        """
        with self._lock:
            self._faults.append(_Fault(path_substring, status, count, method, after, message))

    def before_next(
        self, path_substring: str, action: Callable[[], None], method: str | None = None
    ) -> None:
        """Run action once, just before serving the next matching request (to stage races)."""
        with self._lock:
            self._hooks.append((path_substring, method, action))

    def count(self, method: str, path_substring: str) -> int:
        """How many requests so far matched method and path_substring."""
        return sum(1 for m, p in self.requests if m == method and path_substring in p)

    # -- request dispatch ------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes
    ) -> tuple[int, Any, dict]:
        """Answer one request: (status, json body, extra headers)."""
        with self._lock:
            url = urlsplit(raw_path)
            self.requests.append((method, url.path))
            fault = next((f for f in self._faults
                          if f.needle in url.path and f.method in (None, method)), None)
            if fault is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
            injected = (fault.status, {"message": fault.message}, {}) if fault else None
            if fault is not None and injected is not None and not fault.after:
                return injected
            if self.token is not None:
                scheme, _, given = (headers.get("Authorization") or "").partition(" ")
                if scheme.lower() not in ("token", "bearer") or given != self.token:
                    return 401, {"message": "Bad credentials"}, {}
            for hook in self._hooks:
                if hook[0] in url.path and hook[1] in (None, method):
                    self._hooks.remove(hook)
                    hook[2]()
                    break
            prefix = f"/repos/{self.full_name}"
            if url.path != prefix and not url.path.startswith(prefix + "/"):
                raise ApiError(404, "Not Found")
            rest = url.path[len(prefix) :]
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            data = json.loads(body) if body else {}
            answer = self._route(method, rest, query, data)
            return injected or answer

    def _route(self, method: str, rest: str, query: dict, data: dict) -> tuple[int, Any, dict]:
        ref = re.fullmatch(r"/git/refs?/heads/(.+)", rest)
        if method == "GET" and rest == "":
            return 200, self._repo_json(), {}
        if ref and method == "GET":
            return 200, self._ref_json(ref.group(1)), {}
        if ref and method == "PATCH" and rest.startswith("/git/refs/"):
            return 200, self._update_ref(ref.group(1), data), {}
        if m := re.fullmatch(r"/git/trees/([0-9a-f]{40})", rest):
            if method == "GET":
                return 200, self._tree_json(m.group(1), query.get("recursive") == "1"), {}
        if m := re.fullmatch(r"/git/blobs/([0-9a-f]{40})", rest):
            if method == "GET":
                return 200, self._blob_json(m.group(1)), {}
        if m := re.fullmatch(r"/git/commits/([0-9a-f]{40})", rest):
            if method == "GET":
                return 200, self._git_commit_json(m.group(1)), {}
        if method == "POST" and rest == "/git/blobs":
            return 201, self._create_blob(data), {}
        if method == "POST" and rest == "/git/trees":
            return 201, self._create_tree(data), {}
        if method == "POST" and rest == "/git/commits":
            return 201, self._create_commit(data), {}
        if method == "POST" and rest == "/git/refs":
            return 201, self._create_ref(data), {}
        if rest == "/pulls" and method == "GET":
            return 200, self._list_pulls(query), {}
        if rest == "/pulls" and method == "POST":
            return 201, self._create_pull(data), {}
        if m := re.fullmatch(r"/pulls/(\d+)", rest):
            if method == "GET":
                return 200, self._pull_json(self._pull(int(m.group(1)))), {}
            if method == "PATCH":
                return 200, self._edit_pull(int(m.group(1)), data), {}
        if method == "GET" and rest == "/commits":
            return self._list_commits(query)
        if method == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})", rest)):
            return 200, self._commit_json(m.group(1)), {}
        raise ApiError(404, "Not Found")

    # -- git helpers -----------------------------------------------------------

    def _url(self, rest: str) -> str:
        return f"{self.base_url}/repos/{self.full_name}{rest}"

    def _type(self, sha: str) -> str | None:
        proc = subprocess.run(
            ["git", "-C", str(self.git.path), "cat-file", "-t", sha],
            capture_output=True, check=False,
        )
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def _need(self, sha: Any, kind: str) -> str:
        if not isinstance(sha, str) or not _SHA.match(sha) or self._type(sha) != kind:
            raise ApiError(422, f"{kind} {sha} does not exist")
        return sha

    def _head(self, branch: str) -> str:
        sha = LocalGitRepo(self.git.path, branch)._rev(f"refs/heads/{branch}")
        if sha is None:
            raise ApiError(404, "Not Found")
        return sha

    # -- endpoint bodies -------------------------------------------------------

    def _repo_json(self) -> dict:
        owner, name = self.full_name.split("/")
        return {
            "id": 1, "name": name, "full_name": self.full_name, "private": True,
            "owner": {"login": owner, "id": 1, "type": "Organization"},
            "url": self._url(""), "default_branch": self.branch,
        }

    def _ref_json(self, branch: str) -> dict:
        sha = self._head(branch)
        return {
            "ref": f"refs/heads/{branch}", "node_id": f"REF_{branch}",
            "url": self._url(f"/git/refs/heads/{branch}"),
            "object": {"sha": sha, "type": "commit", "url": self._url(f"/git/commits/{sha}")},
        }

    def _update_ref(self, branch: str, data: dict) -> dict:
        current = self._head(branch)
        new = self._need(data.get("sha"), "commit")
        ancestor = subprocess.run(
            ["git", "-C", str(self.git.path), "merge-base", "--is-ancestor", current, new],
            check=False,
        )
        if not data.get("force") and ancestor.returncode != 0:
            raise ApiError(422, "Update is not a fast forward")
        self.git.git("update-ref", f"refs/heads/{branch}", new, current)
        return self._ref_json(branch)

    def _create_ref(self, data: dict) -> dict:
        ref, sha = data.get("ref"), self._need(data.get("sha"), "commit")
        if not isinstance(ref, str) or not ref.startswith("refs/heads/"):
            raise ApiError(422, "ref must start with refs/heads/")
        branch = ref[len("refs/heads/"):]
        if LocalGitRepo(self.git.path, branch).branch_head(branch) is not None:
            raise ApiError(422, "Reference already exists")
        self.git.git("update-ref", ref, sha, "0" * 40)
        return self._ref_json(branch)

    # -- pull requests (in memory; head sha follows the branch while open) -----

    def _pull(self, number: int) -> dict:
        if not 1 <= number <= len(self.pulls):
            raise ApiError(404, "Not Found")
        return self.pulls[number - 1]

    def _create_pull(self, data: dict) -> dict:
        head, base = data.get("head"), data.get("base")
        if not isinstance(head, str) or not isinstance(base, str) or not data.get("title"):
            raise ApiError(422, "head, base and title are required")
        head = head.split(":", 1)[-1]
        self._head(base)
        if LocalGitRepo(self.git.path, head).branch_head(head) is None:
            raise ApiError(422, f"head branch {head} does not exist")
        if any(p["head"] == head and p["base"] == base and p["state"] == "open" for p in self.pulls):
            raise ApiError(422, f"A pull request already exists for {self.full_name.split('/')[0]}:{head}.")
        pull = {"number": len(self.pulls) + 1, "title": data["title"], "body": data.get("body") or "",
                "head": head, "base": base, "state": "open", "merged": False, "head_sha": None}
        self.pulls.append(pull)
        return self._pull_json(pull)

    def _edit_pull(self, number: int, data: dict) -> dict:
        pull = self._pull(number)
        for key in ("title", "body"):
            if isinstance(data.get(key), str):
                pull[key] = data[key]
        if data.get("state") == "closed" and pull["state"] == "open":
            self.close_pull(number)
        return self._pull_json(pull)

    def close_pull(self, number: int, *, merge: bool = False) -> None:
        """Close a pull request (merging fast-forwards its base to its head first)."""
        pull = self._pull(number)
        pull["head_sha"] = self._head(pull["head"])
        if merge:
            self.git.git("update-ref", f"refs/heads/{pull['base']}", pull["head_sha"])
        pull["state"], pull["merged"] = "closed", merge

    def _list_pulls(self, query: dict) -> list[dict]:
        state = query.get("state", "open")
        head = query.get("head", "").split(":", 1)[-1]
        return [self._pull_json(p) for p in reversed(self.pulls)
                if state in ("all", p["state"]) and (not head or p["head"] == head)
                and query.get("base") in (None, p["base"])]

    def _pull_json(self, pull: dict) -> dict:
        owner = self.full_name.split("/")[0]
        head_sha = pull["head_sha"] or LocalGitRepo(self.git.path, pull["head"]).branch_head(pull["head"])
        number = pull["number"]
        return {
            "id": number, "number": number, "state": pull["state"], "title": pull["title"], "body": pull["body"],
            "url": self._url(f"/pulls/{number}"),
            "html_url": f"https://github.com/{self.full_name}/pull/{number}",
            "merged": pull["merged"],
            "head": {"ref": pull["head"], "sha": head_sha, "label": f"{owner}:{pull['head']}"},
            "base": {"ref": pull["base"], "sha": self._head(pull["base"]), "label": f"{owner}:{pull['base']}"},
        }

    def _tree_json(self, sha: str, recursive: bool) -> dict:
        kind = self._type(sha)
        if kind not in ("tree", "commit"):
            raise ApiError(404, "Not Found")
        tree = self.git.git("rev-parse", f"{sha}^{{tree}}").decode().strip()
        args = ["ls-tree", "-z", "-l", *(["-r", "-t"] if recursive else []), tree]
        entries = []
        for record in self.git.git(*args).split(b"\0"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            mode, typ, osha, size = meta.decode().split()
            entry = {"path": path.decode(), "mode": mode, "type": typ, "sha": osha,
                     "url": self._url(f"/git/{typ}s/{osha}")}
            if typ == "blob":
                entry["size"] = int(size)
            entries.append(entry)
        return {"sha": tree, "url": self._url(f"/git/trees/{tree}"), "tree": entries,
                "truncated": False}

    def _blob_json(self, sha: str) -> dict:
        if self._type(sha) != "blob":
            raise ApiError(404, "Not Found")
        content = self.git.git("cat-file", "blob", sha)
        return {"sha": sha, "node_id": f"BLOB_{sha}", "size": len(content),
                "url": self._url(f"/git/blobs/{sha}"), "encoding": "base64",
                "content": base64.encodebytes(content).decode()}  # GitHub wraps lines too

    def _create_blob(self, data: dict) -> dict:
        content, encoding = data.get("content"), data.get("encoding", "utf-8")
        if not isinstance(content, str) or encoding not in ("utf-8", "base64"):
            raise ApiError(422, "Invalid request.")
        raw = base64.b64decode(content) if encoding == "base64" else content.encode()
        sha = self.git.git("hash-object", "-w", "--stdin", input=raw).decode().strip()
        return {"sha": sha, "url": self._url(f"/git/blobs/{sha}")}

    def _create_tree(self, data: dict) -> dict:
        base = data.get("base_tree")
        lines: list[str] = []
        for el in data.get("tree") or []:
            path, mode, typ = el.get("path"), el.get("mode"), el.get("type")
            if typ != "blob" or mode not in ("100644", "100755") or not path:
                raise ApiError(422, f"unsupported tree element {el!r}")
            if "content" in el:
                sha = self._create_blob({"content": el["content"]})["sha"]
            elif el.get("sha") is None:
                lines.append(f"0 {'0' * 40}\t{path}")  # sha: null deletes the path
                continue
            else:
                sha = self._need(el["sha"], "blob")
            lines.append(f"{mode} {sha}\t{path}")
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base:
                self.git.git("read-tree", self._need(base, "tree"), env=env)
            if lines:
                stdin = "".join(line + "\0" for line in lines).encode()
                self.git.git("update-index", "-z", "--index-info", input=stdin, env=env)
            tree = self.git.git("write-tree", env=env).decode().strip()
        return self._tree_json(tree, recursive=False)

    def _create_commit(self, data: dict) -> dict:
        tree = self._need(data.get("tree"), "tree")
        parents = [self._need(p, "commit") for p in data.get("parents") or []]
        message = data.get("message")
        if not isinstance(message, str):
            raise ApiError(422, "message is required")
        author = data.get("author") or {"name": "fake", "email": "fake@example.com"}
        committer = data.get("committer") or author
        env = {"GIT_AUTHOR_NAME": author["name"], "GIT_AUTHOR_EMAIL": author["email"],
               "GIT_COMMITTER_NAME": committer["name"], "GIT_COMMITTER_EMAIL": committer["email"]}
        if author.get("date"):
            env["GIT_AUTHOR_DATE"] = author["date"]
        args = ["commit-tree", "--no-gpg-sign", tree]
        for p in parents:
            args += ["-p", p]
        sha = self.git.git(*args, input=message.encode(), env=env).decode().strip()
        return self._git_commit_json(sha)

    def _git_commit_json(self, sha: str) -> dict:
        if self._type(sha) != "commit":
            raise ApiError(404, "Not Found")
        fmt = "%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
        out = self.git.git("show", "-s", f"--format={fmt}", sha).decode()
        tree, parents, an, ae, ad, cn, ce, cd, message = out.split("\0", 8)
        return {
            "sha": sha, "node_id": f"C_{sha}", "url": self._url(f"/git/commits/{sha}"),
            "html_url": f"https://github.com/{self.full_name}/commit/{sha}",
            "author": {"name": an, "email": ae, "date": ad},
            "committer": {"name": cn, "email": ce, "date": cd},
            "message": message.rstrip("\n"),
            "tree": {"sha": tree, "url": self._url(f"/git/trees/{tree}")},
            "parents": [{"sha": p, "url": self._url(f"/git/commits/{p}")} for p in parents.split()],
            "verification": {"verified": False, "reason": "unsigned", "signature": None,
                             "payload": None},
        }

    def _commit_json(self, sha: str) -> dict:
        git_commit = self._git_commit_json(sha)
        return {
            "sha": sha, "node_id": git_commit["node_id"], "url": self._url(f"/commits/{sha}"),
            "html_url": git_commit["html_url"], "commit": git_commit,
            "author": None, "committer": None,
            "parents": [{"sha": p["sha"], "url": self._url(f"/commits/{p['sha']}")}
                        for p in git_commit["parents"]],
        }

    def _list_commits(self, query: dict) -> tuple[int, Any, dict]:
        start = query.get("sha") or self.branch
        rev = start if _SHA.match(start) else f"refs/heads/{start}"
        if self._type(rev) != "commit":
            raise ApiError(404, "No commit found for SHA: " + start)
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        out = self.git.git("rev-list", f"--skip={(page - 1) * per_page}",
                           f"--max-count={per_page + 1}", rev)
        shas = out.decode().split()
        headers = {}
        if len(shas) > per_page:  # PyGithub's PaginatedList follows rel="next"
            nxt = self._url(f"/commits?sha={start}&per_page={per_page}&page={page + 1}")
            headers["Link"] = f'<{nxt}>; rel="next"'
        return 200, [self._commit_json(s) for s in shas[:per_page]], headers


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, payload, extra = self.fake.handle(self.command, self.path, self.headers, body)
        except ApiError as exc:
            status, payload, extra = exc.status, {"message": exc.message}, {}
        except Exception as exc:  # a bug in the fake must show as a 500, not a hang
            status, payload, extra = 500, {"message": f"fake server error: {exc!r}"}, {}
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # keep test output quiet
