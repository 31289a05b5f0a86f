"""The file-system type of a search folder decides SQLite's journal mode."""

from __future__ import annotations

import pytest

from hpsearch import filesystem
from hpsearch.filesystem import is_network_filesystem, journal_mode_for, mount_type
from hpsearch import store as store_module
from hpsearch.store import RunStore

# Lines as a cluster login node shows them (captured, shortened).
MOUNTINFO = r"""
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
30 27 0:25 / /tmp rw,nosuid,nodev shared:5 - tmpfs tmpfs rw
41 27 0:44 / /home rw,relatime shared:20 - nfs4 fileserver:/export/home rw,vers=4.2,rsize=1048576,hard,proto=tcp
42 41 0:45 / /home/alice/scratch rw,relatime shared:21 - ext4 /dev/vdb1 rw
43 27 0:46 / /lustre rw,relatime shared:22 - lustre 10.0.0.1@o2ib:/scratch rw,flock,lazystatfs
44 27 0:47 / /gpfs/work rw,relatime shared:23 - gpfs work rw
45 27 0:48 / /mnt/my\040share rw,relatime shared:24 - cifs //nas/share rw,vers=3.0
46 27 0:49 / /data rw,relatime shared:25 - nfs nas:/data rw,vers=3,nolock
47 46 0:50 / /data rw,relatime shared:26 - ext4 /dev/vdc1 rw
48 27 0:51 / /mnt/remote rw,nosuid,nodev,relatime shared:27 - fuse.sshfs alice@host:/ rw,user_id=1000
""".strip()


@pytest.mark.parametrize("path, fstype", [
    ("/", "ext4"),
    ("/tmp/x", "tmpfs"),
    ("/home/alice/search", "nfs4"),
    ("/home/alice/scratch/search", "ext4"),   # a local disk mounted inside the NFS home
    ("/home/alice/scratchy", "nfs4"),         # a prefix of the name is not a mount point
    ("/lustre/alice/search_1", "lustre"),
    ("/gpfs/work/x", "gpfs"),
    ("/gpfs/workers", "ext4"),
    ("/mnt/my share/s", "cifs"),              # \040 in mountinfo is a space
    ("/data/s", "ext4"),                      # the mount on top wins
    ("/mnt/remote/s", "fuse.sshfs"),
])
def test_mount_type_finds_the_file_system_holding_the_path(path, fstype):
    assert mount_type(MOUNTINFO, path) == fstype


@pytest.mark.parametrize("fstype, network", [
    ("nfs", True), ("nfs4", True), ("lustre", True), ("gpfs", True), ("cifs", True), ("smb3", True),
    ("fuse.sshfs", True), ("beegfs", True), ("ext4", False), ("xfs", False), ("tmpfs", False),
    ("btrfs", False), ("overlay", False), (None, False),
])
def test_network_file_systems(fstype, network):
    assert is_network_filesystem(fstype) is network


@pytest.mark.parametrize("path, mode", [
    ("/home/alice/search", "DELETE"), ("/lustre/a", "DELETE"), ("/gpfs/work/a", "DELETE"),
    ("/mnt/my share/a", "DELETE"), ("/home/alice/scratch/a", "WAL"), ("/tmp/a", "WAL"), ("/srv/a", "WAL"),
])
def test_journal_mode_follows_the_mount(tmp_path, monkeypatch, path, mode):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO + "\n")
    monkeypatch.setattr(filesystem, "MOUNTINFO", mountinfo)
    monkeypatch.setattr(filesystem.os.path, "realpath", lambda _p: path)
    assert journal_mode_for(tmp_path) == mode


def test_garbage_lines_and_no_mountinfo_count_as_local(tmp_path, monkeypatch):
    assert mount_type("nonsense\n\n1 2 3\n", "/x") is None
    monkeypatch.setattr(filesystem, "MOUNTINFO", tmp_path / "absent")
    assert journal_mode_for(tmp_path) == "WAL"


def test_store_on_a_network_folder_uses_a_rollback_journal(tmp_path, monkeypatch):
    monkeypatch.setattr(filesystem, "filesystem_type", lambda _folder: "nfs4")
    with RunStore.open(tmp_path) as store:
        assert store.journal_mode == "delete"
        store.add_configs([("k", {"i": 1})], lambda i: f"sim_{i}")
    assert not (tmp_path / "hpsearch.db-wal").exists()
    with RunStore.open(tmp_path) as store:
        assert [r.key for r in store.records()] == ["k"]


def test_store_on_this_machine_uses_wal(tmp_path):
    assert filesystem.filesystem_type(tmp_path) not in filesystem.NETWORK_FILESYSTEMS
    with RunStore.open(tmp_path) as store:
        assert store.journal_mode == "wal"


def test_a_file_system_without_locks_is_named_in_one_line(tmp_path, monkeypatch):
    import errno

    from hpsearch.errors import StoreError
    from hpsearch.store import SearchLock

    def no_locks(_fd, _operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(store_module.fcntl, "flock", no_locks)
    monkeypatch.setattr(store_module, "filesystem_type", lambda _folder: "lustre")
    with pytest.raises(StoreError) as caught:
        SearchLock(tmp_path).acquire()
    message = str(caught.value)
    assert "\n" not in message and "lustre file system" in message and "-o flock" in message
