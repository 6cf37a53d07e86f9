"""Environment facts are parsed from the files and tools Ascend machines have."""

import json

from pytest_ascend.platforms.cpu import CpuDevice
from pytest_ascend.platforms.npu import ascend_version_file, cann_version, parse_npu_smi
from pytest_ascend.reports.environment import gather_environment

NPU_SMI = """\
+------------------------------------------------------------------------------------------------+
| npu-smi 24.1.rc2                 Version: 24.1.rc2                                             |
+---------------------------+---------------+----------------------------------------------------+
| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
+===========================+===============+====================================================+
| 0     910B3               | OK            | 91.3        33                0    / 0             |
| 0                         | 0000:C1:00.0  | 0           0    / 0          3197 / 65536         |
+===========================+===============+====================================================+
| 1     910B3               | OK            | 90.1        35                0    / 0             |
| 0                         | 0000:01:00.0  | 0           0    / 0          3161 / 65536         |
+===========================+===============+====================================================+
| NPU     Chip              | Process id    | Process name             | Process memory(MB)      |
+===========================+===============+====================================================+
| 0       0                 | 41234         | python                   | 3000                    |
+===========================+===============+====================================================+
"""


def test_npu_smi_table_gives_chip_bus_and_hbm_per_npu():
    assert parse_npu_smi(NPU_SMI) == [
        {"npu": 0, "chip": 0, "name": "910B3", "bus_id": "0000:c1:00.0",
         "hbm_total_mb": 65536},
        {"npu": 1, "chip": 0, "name": "910B3", "bus_id": "0000:01:00.0",
         "hbm_total_mb": 65536},
    ]


def test_driver_version_prefers_package_version(tmp_path):
    info = tmp_path / "version.info"
    info.write_text("Version=7.35.23\nascendhal_version=7.35.23\npackage_version=24.1.rc2.2\n")
    assert ascend_version_file(info) == "24.1.rc2.2"
    info.write_text("Version=7.5.0.1.129\nfirmware_version=1.0\n")
    assert ascend_version_file(info) == "7.5.0.1.129"


def test_cann_version_from_toolkit_install_info(tmp_path):
    arch_dir = tmp_path / "toolkit" / "aarch64-linux"
    arch_dir.mkdir(parents=True)
    (arch_dir / "ascend_toolkit_install.info").write_text(
        "package_name=Ascend-cann-toolkit\nversion=8.0.RC2\ninnerversion=V100R001C18\narch=aarch64\n"
    )
    env = {"ASCEND_HOME_PATH": str(tmp_path / "toolkit")}
    assert cann_version(env, root=tmp_path / "none") == "8.0.RC2"
    assert cann_version({}, root=tmp_path / "none") is None


def test_cpu_environment_is_complete_and_serialisable():
    env = gather_environment(CpuDevice())
    assert env["device_kind"] == "cpu" and env["torch"] and env["memory_total"] > 0
    assert env["cann"] is None and env["npu_chip"] is None and env["torch_npu"] is None
    assert env["timing_caveat"] is None
    json.dumps(env)


BOX_SETTINGS = {"TASK_QUEUE_ENABLE": "2", "INF_NAN_MODE_ENABLE": "1", "ACL_OP_INIT_MODE": "1",
                "CPU_AFFINITY_CONF": "1", "HCCL_DETERMINISTIC": "true"}


def test_the_box_settings_that_change_results_are_recorded(monkeypatch):
    """The launch queue, inf/nan saturation, operator init, core binding and HCCL
    determinism change what a run measures: a result must say how they were set."""
    for name, value in BOX_SETTINGS.items():
        monkeypatch.setenv(name, value)
    env = gather_environment(CpuDevice())
    assert {k: env["env_vars"].get(k) for k in BOX_SETTINGS} == BOX_SETTINGS
