from pim.runtime.settings import PimSettings


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PIM_TASK_QUEUE", "pim-eu")
    monkeypatch.setenv("PIM_MAX_ROLE_ASSIGNABLE_GROUPS", "3")
    settings = PimSettings()
    assert settings.task_queue == "pim-eu" and settings.max_role_assignable_groups == 3


def test_defaults_match_the_spec(monkeypatch):
    for name in ("PIM_TEMPORAL_ADDRESS", "PIM_NAMESPACE", "PIM_TASK_QUEUE", "PIM_MAX_ROLE_ASSIGNABLE_GROUPS"):
        monkeypatch.delenv(name, raising=False)
    settings = PimSettings()
    assert (settings.temporal_address, settings.namespace, settings.task_queue) == ("localhost:7233", "default", "pim")
    assert settings.max_role_assignable_groups == 500
