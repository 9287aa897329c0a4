"""Two worker processes on one study through Optuna's RDB storage on a real PostgreSQL server
(started here in a temp dir, as the postgres user when the tests run as root): the trials are
shared, none lost and none run twice. Skips, saying why, where PostgreSQL is not installed."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from rl.optimize.walkforward import rdb_url
from tests.optimize.cli_support import command, start, two_months

pytestmark = pytest.mark.slow
TRIALS = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url():
    two_months()                                # no data, no test: skip before starting a server
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
    initdb = bins[-1]
    if not initdb or not os.path.exists(initdb):
        pytest.skip("PostgreSQL is not installed here (no initdb; Debian: apt-get install postgresql)")
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed")
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    root = Path(tempfile.mkdtemp(prefix="pg-optimize-", dir="/tmp"))
    os.chmod(root, 0o755)
    prefix: list[str] = []
    if os.geteuid() == 0:                       # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    port = _free_port()
    subprocess.run(prefix + [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    # -w: pg_ctl returns once the server accepts connections
    subprocess.run(prefix + [pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
                             f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE optuna")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study_none_lost_none_twice(postgres_url, tmp_path) -> None:
    import optuna
    from optuna.trial import TrialState

    two_months()
    cmd = command("shared", postgres_url, tmp_path, TRIALS)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [start(cmd, log) for log in logs]
    codes = [p.wait(timeout=1200) for p in procs]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], texts
    study = optuna.load_study(study_name="shared.fold1", storage=rdb_url(postgres_url))
    trials = study.get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert all(t.state == TrialState.COMPLETE for t in trials)          # nothing left running or failed
    # each worker asks only while fewer than TRIALS are done or running: at most one extra
    assert TRIALS <= len(done) <= TRIALS + 1
    assert sorted(t.number for t in done) == list(range(len(done)))     # unique, no gaps
    assert len({tuple(sorted(t.params.items())) for t in done}) == len(done)
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) == 2                                            # both took part
    # none lost: what the workers say they ran adds up to what the study holds
    ran = [int(line.split(": ", 1)[1].split(" ", 1)[0]) for text in texts
           for line in text.splitlines() if line.startswith("fold 1: ")]
    assert len(ran) == 2 and sum(ran) == len(done)
    assert (tmp_path / "shared.json").is_file()
