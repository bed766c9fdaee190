"""Secrets from the environment and from Key Vault (a stand-in client: no Azure here)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)

from wpmsync import secrets as secrets_module
from wpmsync.errors import ConfigError
from wpmsync.secrets import ENTRA_MYSQL_SCOPE, Secrets, get_secrets, reset_secrets

VAULT = "https://wpmsync-test.vault.azure.net"
HOOK = "hook-secret-0123456789abcdef"
DB_PW = "db-Pa55word-very-secret"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSecretClient:
    """Records get_secret calls; values (or exceptions) per secret name."""

    instances: list["FakeSecretClient"] = []

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values
        self.calls: list[str] = []

    def get_secret(self, name: str) -> SimpleNamespace:
        self.calls.append(name)
        value = self.values.get(name)
        if isinstance(value, BaseException):
            raise value
        if value is None:
            raise ResourceNotFoundError(f"(SecretNotFound) A secret with (name/id) {name} was not found")
        return SimpleNamespace(value=value)


class FakeCredential:
    def __init__(self, tokens: list[tuple[str, float]] | None = None, error: BaseException | None = None) -> None:
        self.tokens = list(tokens or [])
        self.error = error
        self.scopes: list[str] = []

    def get_token(self, *scopes: str) -> SimpleNamespace:
        self.scopes.extend(scopes)
        if self.error is not None:
            raise self.error
        token, expires_on = self.tokens.pop(0)
        return SimpleNamespace(token=token, expires_on=expires_on)


def vault_secrets(values: dict[str, object], env: dict[str, str] | None = None,
                  credential: FakeCredential | None = None, **kwargs):
    """Secrets reading the stand-in vault; ``made`` lists the clients and credentials built."""
    made: dict[str, list] = {"clients": [], "credentials": []}

    def client_factory(url: str, cred: object) -> FakeSecretClient:
        assert url == VAULT
        assert cred is made["credentials"][0]
        client = FakeSecretClient(values)
        made["clients"].append(client)
        return client

    def credential_factory() -> FakeCredential:
        cred = credential or FakeCredential()
        made["credentials"].append(cred)
        return cred

    the_env = {"WPMSYNC_KEY_VAULT_URL": VAULT, **(env or {})}
    s = Secrets(the_env, client_factory=client_factory, credential_factory=credential_factory, **kwargs)
    return s, made


# ---------------------------------------------------------------- environment
def test_env_path_reads_environment_and_never_builds_azure_clients():
    def boom(*_a):
        raise AssertionError("no Azure client on the environment path")

    s = Secrets({"WPMSYNC_HOOK_SECRET": HOOK, "WPMSYNC_DB_PASSWORD": DB_PW},
                client_factory=boom, credential_factory=boom)
    assert s.source == "environment"
    assert s.hook_secret() == HOOK
    assert s.db_password() == DB_PW


def test_env_db_password_may_be_empty_or_unset():
    assert Secrets({"WPMSYNC_HOOK_SECRET": HOOK}).db_password() == ""
    assert Secrets({"WPMSYNC_DB_PASSWORD": ""}).db_password() == ""


@pytest.mark.parametrize("value", [None, "", "short-secret"])
def test_missing_or_short_hook_secret_is_one_clear_line(value):
    env = {} if value is None else {"WPMSYNC_HOOK_SECRET": value}
    with pytest.raises(ConfigError) as info:
        Secrets(env).hook_secret()
    message = str(info.value)
    assert "WPMSYNC_HOOK_SECRET" in message and "16" in message
    assert "\n" not in message
    if value:
        assert value not in message


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="WPMSYNC_DB_AUTH must be password or entra"):
        Secrets({"WPMSYNC_DB_AUTH": "kerberos"})
    with pytest.raises(ConfigError, match="WPMSYNC_KEY_VAULT_URL"):
        Secrets({"WPMSYNC_KEY_VAULT_URL": "http://plain.example"})


# ---------------------------------------------------------------- Key Vault
def test_key_vault_path_default_names():
    s, made = vault_secrets({"wpmsync-db-password": DB_PW, "wpmsync-hook-secret": HOOK},
                            env={"WPMSYNC_HOOK_SECRET": "ignored-when-a-vault-is-set"})
    assert not made["clients"], "client created lazily"
    assert s.source == "key-vault"
    assert s.hook_secret() == HOOK
    assert s.db_password() == DB_PW
    assert len(made["clients"]) == 1 and len(made["credentials"]) == 1
    # the optional previous hook secret is read with the current one (missing here: none)
    assert made["clients"][0].calls == ["wpmsync-hook-secret", "wpmsync-hook-secret-previous",
                                        "wpmsync-db-password"]


def test_key_vault_secret_names_from_settings():
    s, made = vault_secrets(
        {"db-pw": DB_PW, "hooks": HOOK},
        env={"WPMSYNC_DB_PASSWORD_SECRET_NAME": "db-pw", "WPMSYNC_HOOK_SECRET_NAME": "hooks"},
    )
    assert (s.db_password(), s.hook_secret()) == (DB_PW, HOOK)


def test_values_cached_one_fetch_for_many_calls():
    s, made = vault_secrets({"wpmsync-db-password": DB_PW, "wpmsync-hook-secret": HOOK})
    for _ in range(50):
        assert s.hook_secret() == HOOK
        assert s.db_password() == DB_PW
    assert made["clients"][0].calls == ["wpmsync-hook-secret", "wpmsync-hook-secret-previous",
                                        "wpmsync-db-password"]
    assert len(made["clients"]) == 1


def test_ttl_expiry_refetches_and_picks_up_rotation():
    clock = FakeClock()
    values = {"wpmsync-hook-secret": HOOK}
    s, made = vault_secrets(values, ttl_seconds=600, clock=clock)
    assert s.hook_secret() == HOOK
    values["wpmsync-hook-secret"] = "rotated-hook-secret-0123456789"
    clock.now += 599
    assert s.hook_secret() == HOOK  # still cached
    clock.now += 2
    assert s.hook_secret() == "rotated-hook-secret-0123456789"
    assert made["clients"][0].calls == ["wpmsync-hook-secret", "wpmsync-hook-secret-previous"] * 2
    assert len(made["clients"]) == 1  # the client is reused


def test_missing_hook_secret_in_vault_is_config_error():
    s, _ = vault_secrets({})
    with pytest.raises(ConfigError) as info:
        s.hook_secret()
    message = str(info.value)
    assert "wpmsync-hook-secret" in message and VAULT in message and "\n" not in message


def test_short_hook_secret_in_vault_is_config_error_without_value():
    s, _ = vault_secrets({"wpmsync-hook-secret": "tooshort123"})
    with pytest.raises(ConfigError) as info:
        s.hook_secret()
    assert "tooshort123" not in str(info.value)
    assert "wpmsync-hook-secret" in str(info.value)


@pytest.mark.parametrize("error", [
    ResourceNotFoundError("(SecretNotFound) A secret with (name/id) wpmsync-db-password was not found"),
    HttpResponseError(f"(Forbidden) caller may not read; echo {DB_PW}"),
    ClientAuthenticationError(f"DefaultAzureCredential failed to retrieve a token\nline 2 {HOOK}"),
    ServiceRequestError("connection refused"),
])
def test_key_vault_errors_are_config_errors_without_secret_values(error):
    # The hook secret is cached first, so a value is known that must never leak.
    s, _ = vault_secrets({"wpmsync-hook-secret": HOOK, "wpmsync-db-password": error},
                         env={"WPMSYNC_DB_PASSWORD": DB_PW})
    assert s.hook_secret() == HOOK
    with pytest.raises(ConfigError) as info:
        s.db_password()
    message = str(info.value)
    assert VAULT in message and "wpmsync-db-password" in message
    assert HOOK not in message and DB_PW not in message
    assert "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_repr_hides_values():
    s, _ = vault_secrets({"wpmsync-db-password": DB_PW, "wpmsync-hook-secret": HOOK})
    s.db_password(), s.hook_secret()
    for text in (repr(s), str(s), f"{s!r}", str(vars(s).keys())):
        assert DB_PW not in text and HOOK not in text
    assert VAULT in repr(s)
    e = Secrets({"WPMSYNC_HOOK_SECRET": HOOK, "WPMSYNC_DB_PASSWORD": DB_PW})
    e.hook_secret()
    assert HOOK not in repr(e) and DB_PW not in repr(e)


# ---------------------------------------------------------------- previous hook secret (rotation)
OLD = "old-hook-secret-0123456789abcdef"


@pytest.mark.parametrize("previous", [None, "", HOOK])
def test_env_without_previous_hook_secret_is_the_current_alone(previous):
    env = {"WPMSYNC_HOOK_SECRET": HOOK}
    if previous is not None:
        env["WPMSYNC_HOOK_SECRET_PREVIOUS"] = previous  # unset, empty, or equal: no previous
    assert Secrets(env).hook_secrets() == (HOOK,)


def test_env_previous_hook_secret_comes_after_the_current():
    s = Secrets({"WPMSYNC_HOOK_SECRET": HOOK, "WPMSYNC_HOOK_SECRET_PREVIOUS": OLD})
    assert s.hook_secrets() == (HOOK, OLD)
    assert s.hook_secret() == HOOK


def test_short_previous_hook_secret_is_one_clear_line():
    s = Secrets({"WPMSYNC_HOOK_SECRET": HOOK, "WPMSYNC_HOOK_SECRET_PREVIOUS": "short-old"})
    with pytest.raises(ConfigError) as info:
        s.hook_secrets()
    message = str(info.value)
    assert "WPMSYNC_HOOK_SECRET_PREVIOUS" in message and "too short" in message
    assert "short-old" not in message and "\n" not in message


def test_key_vault_previous_hook_secret_default_and_custom_name():
    s, made = vault_secrets({"wpmsync-hook-secret": HOOK, "wpmsync-hook-secret-previous": OLD})
    assert s.hook_secrets() == (HOOK, OLD)
    assert made["clients"][0].calls == ["wpmsync-hook-secret", "wpmsync-hook-secret-previous"]
    s, made = vault_secrets({"wpmsync-hook-secret": HOOK, "old-hooks": OLD},
                            env={"WPMSYNC_HOOK_SECRET_PREVIOUS_NAME": "old-hooks",
                                 "WPMSYNC_HOOK_SECRET_PREVIOUS": "ignored-when-a-vault-is-set"})
    assert s.hook_secrets() == (HOOK, OLD)


def test_key_vault_previous_hook_secret_error_other_than_not_found_is_config_error():
    s, _ = vault_secrets({"wpmsync-hook-secret": HOOK,
                          "wpmsync-hook-secret-previous": HttpResponseError(f"(Forbidden) echo {HOOK}")})
    with pytest.raises(ConfigError) as info:
        s.hook_secrets()  # the current one was read in the same pass: masked as well
    assert "wpmsync-hook-secret-previous" in str(info.value) and "Forbidden" in str(info.value)
    assert HOOK not in str(info.value) and "\n" not in str(info.value)


def test_key_vault_rotation_is_seen_as_one_pair():
    """Step 1 of the rotation in the vault: previous=old, then current=new. An instance whose
    cached current secret expires must not pair the new current with its cached "no previous"
    (that state would refuse WordPress, still signing with the old secret only): both are
    fetched again together, and both stay cached together."""
    clock = FakeClock()
    values: dict[str, object] = {"wpmsync-hook-secret": OLD}
    s, made = vault_secrets(values, ttl_seconds=600, clock=clock)
    assert s.hook_secrets() == (OLD,)  # the pair cached at t=0
    clock.now += 300
    values["wpmsync-hook-secret-previous"] = OLD
    values["wpmsync-hook-secret"] = HOOK
    clock.now += 299
    assert s.hook_secrets() == (OLD,)  # still the cached pair
    clock.now += 2
    assert s.hook_secrets() == (HOOK, OLD)  # never (HOOK,)
    # Step 3 (the previous secret deleted): the pair again, together.
    del values["wpmsync-hook-secret-previous"]
    clock.now += 601
    assert s.hook_secrets() == (HOOK,)
    calls = made["clients"][0].calls
    assert calls.count("wpmsync-hook-secret") == calls.count("wpmsync-hook-secret-previous") == 3


# ---------------------------------------------------------------- Entra tokens
def test_entra_token_cached_until_five_minutes_before_expiry():
    wall = FakeClock(1_700_000_000.0)
    cred = FakeCredential(tokens=[("token-one", wall.now + 3600), ("token-two", wall.now + 7200)])
    s, made = vault_secrets({}, env={"WPMSYNC_DB_AUTH": "entra"}, credential=cred, wall_clock=wall)
    assert s.db_password() == "token-one"
    assert s.db_password() == "token-one"
    wall.now += 3600 - 301
    assert s.db_password() == "token-one"
    wall.now += 2  # now within 5 minutes of expiry
    assert s.db_password() == "token-two"
    assert cred.scopes == [ENTRA_MYSQL_SCOPE, ENTRA_MYSQL_SCOPE]
    assert made["clients"] == [], "no Key Vault read for the token"


def test_entra_without_key_vault_uses_credential_and_env_hook_secret():
    cred = FakeCredential(tokens=[("tok", 10_000.0)])
    s = Secrets({"WPMSYNC_DB_AUTH": "Entra", "WPMSYNC_HOOK_SECRET": HOOK, "WPMSYNC_DB_PASSWORD": "unused"},
                credential_factory=lambda: cred, wall_clock=lambda: 0.0)
    assert s.db_password() == "tok"
    assert s.hook_secret() == HOOK
    assert "tok" not in repr(s)


def test_entra_credential_error_is_config_error():
    cred = FakeCredential(error=ClientAuthenticationError("ManagedIdentityCredential: no identity\nmore"))
    s = Secrets({"WPMSYNC_DB_AUTH": "entra"}, credential_factory=lambda: cred)
    with pytest.raises(ConfigError) as info:
        s.db_password()
    assert "WPMSYNC_DB_AUTH=entra" in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- process-wide
def test_get_secrets_is_cached_and_resettable(monkeypatch):
    monkeypatch.delenv("WPMSYNC_KEY_VAULT_URL", raising=False)
    monkeypatch.delenv("WPMSYNC_DB_AUTH", raising=False)
    monkeypatch.setenv("WPMSYNC_HOOK_SECRET", HOOK)
    reset_secrets()
    try:
        first = get_secrets()
        assert get_secrets() is first
        assert first.hook_secret() == HOOK
        reset_secrets()
        assert get_secrets() is not first
    finally:
        reset_secrets()
    assert secrets_module._instance is None
