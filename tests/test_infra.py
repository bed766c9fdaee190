"""The Bicep in infra/ deploys what the code needs, and only that, the secure way.

Checked offline (no Bicep compiler here): every ``.bicep`` file is parsed with pycep-parser,
the parsed templates are checked for the settings and security properties below, and checkov
scans ``infra/`` with zero failed checks (each skip is a ``// checkov:skip=ID: reason`` comment
in the Bicep, and every such comment is used).

Settings: the settings the code reads are the keys of local.settings.sample.json's Values
(tests/test_settings_files.py proves that). In Azure the app gets all of them from
infra/main.bicep, except the ones in ``LOCAL_ONLY`` (replaced there by something else) and
``OPTIONAL_IN_AZURE`` (left to their default), plus ``HOST_SETTINGS_IN_AZURE``, read by the
Functions host or the Azure SDK rather than by our code.

Identity: the app runs as one user-assigned managed identity (infra/app/identity.bicep), created
before the app with every role assigned to it, and every client (host storage, deployment
package, Application Insights, Key Vault, the queue sender, the MySQL Entra token) names it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from pycep import BicepParser
from test_settings_files import settings_read_by_code

from wpmsync import queue as wpmsync_queue
from wpmsync import secrets as wpmsync_secrets

INFRA = ROOT / "infra"
SAMPLE = ROOT / "local.settings.sample.json"

# Settings of local.settings.sample.json that the Azure app does not get, each with what it gets
# instead (every replacement must be set by the Bicep) and why.
LOCAL_ONLY: dict[str, tuple[tuple[str, ...], str]] = {
    "FUNCTIONS_WORKER_RUNTIME": (
        (),
        ("Flex Consumption sets the worker runtime in functionAppConfig.runtime (python 3.11), "
         "not as an app setting (the plan refuses FUNCTIONS_WORKER_RUNTIME)"),
    ),
    "AzureWebJobsStorage": (
        ("AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId"),
        ("locally the Azurite connection string; in Azure the identity-based "
         "AzureWebJobsStorage__accountName (no key) with the user-assigned identity "
         "(__credential=managedidentity, __clientId), which the host and wpmsync/queue.py both read"),
    ),
    "WPMSYNC_HOOK_SECRET": (
        ("WPMSYNC_KEY_VAULT_URL", "WPMSYNC_HOOK_SECRET_NAME"),
        ("locally the value; in Azure a Key Vault secret read with the app's identity "
         "(wpmsync/secrets.py), never an app setting"),
    ),
    "WPMSYNC_HOOK_SECRET_PREVIOUS": (
        ("WPMSYNC_KEY_VAULT_URL", "WPMSYNC_HOOK_SECRET_PREVIOUS_NAME"),
        ("locally the value (empty: no rotation under way); in Azure the optional Key Vault secret "
         "of the same name, never an app setting"),
    ),
    "WPMSYNC_DB_PASSWORD": (
        ("WPMSYNC_KEY_VAULT_URL", "WPMSYNC_DB_PASSWORD_SECRET_NAME"),
        ("locally the value (empty for MariaDB); in Azure a Key Vault secret, or no password at all "
         "with WPMSYNC_DB_AUTH=entra"),
    ),
}
# Settings the code reads that the Bicep leaves unset on purpose: their default is right in Azure.
OPTIONAL_IN_AZURE: dict[str, str] = {
    "WPMSYNC_DB_SSL_CA": "default: the system CA bundle, which holds the roots of Azure Database "
                         "for MySQL's certificates (TLS itself is on: WPMSYNC_DB_SSL=true)",
}
# App settings the Bicep sets that no ``WPMSYNC_*`` name of the code stands for: the Functions host
# reads them, or the Azure SDK inside the code does.
HOST_SETTINGS_IN_AZURE: dict[str, str] = {
    "AzureWebJobsStorage__accountName": "identity-based host storage (and the batch queue)",
    "AzureWebJobsStorage__credential": "managedidentity: the host's storage with a managed identity",
    "AzureWebJobsStorage__clientId": "which identity: the user-assigned one (the host and wpmsync/queue.py)",
    "AZURE_CLIENT_ID": "the user-assigned identity for DefaultAzureCredential (wpmsync/secrets.py: "
                       "Key Vault, the MySQL Entra token)",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where the host sends logs and telemetry",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra auth for telemetry as the user-assigned identity "
                                                 "(local auth is off)",
}
# Settings of issue 12 (the writer cap and the nightly full reconcile), listed explicitly with the
# sample's value: the sample and the Bicep carry each. The code reads them (wpmsync/config.py,
# blueprints/reconcile.py); test_settings_mapping_is_complete_and_explicit lets one of these, and
# only these, be in the sample a moment before the code reads it (tests/test_settings_files.py
# still requires the exact match).
ISSUE_12_SETTINGS: dict[str, str] = {
    "WPMSYNC_MAX_PARALLEL_BATCHES": "4",
    "WPMSYNC_BATCH_SECONDS": "1",
    "WPMSYNC_FULL_RECONCILE_SCHEDULE": "0 30 2 * * *",
}

_parser = BicepParser()
_parsed: dict[Path, dict[str, Any]] = {}


def parse(path: Path) -> dict[str, Any]:
    if path not in _parsed:
        _parsed[path] = _parser.parse(file_path=path)
    return _parsed[path]


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def body(item: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's body, whether or not it has an ``if (...)`` condition."""
    config = item["config"]
    return config["config"] if "condition" in config and "config" in config else config


def resources(path: Path, type_: str) -> dict[str, dict[str, Any]]:
    return {name: body(res) for name, res in parse(path).get("resources", {}).items()
            if res["type"] == type_ and not res.get("existing")}


def one(path: Path, type_: str) -> dict[str, Any]:
    found = resources(path, type_)
    assert len(found) == 1, f"{path.name}: expected one {type_}, found {sorted(found)}"
    return next(iter(found.values()))


def variable(path: Path, name: str) -> Any:
    return parse(path)["variables"][name]["value"]


def expr(value: Any) -> Any:
    """``a.b.c`` for pycep's nested property accessors; anything else unchanged."""
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        operands = value["operator"]["operands"]
        return f"{expr(operands['operand_1'])}.{expr(operands['operand_2'])}"
    return value


def sample_settings() -> set[str]:
    return set(json.loads(SAMPLE.read_text())["Values"])


def azd_parameter(name: str) -> tuple[str, str | None]:
    """(azd environment variable, its default or None) of a main.parameters.json parameter."""
    value = json.loads((INFRA / "main.parameters.json").read_text())["parameters"][name]["value"]
    match = re.fullmatch(r"\$\{([A-Z][A-Z0-9_]*)(?:=([^}]*))?\}", value)
    assert match, f"{name}: {value!r} is not an azd ${{VAR}} / ${{VAR=default}} value"
    return match.group(1), match.group(2)


def decorator(param: dict[str, Any], type_: str) -> Any:
    found = [d["argument"] for d in param["decorators"] if d["type"] == type_]
    assert len(found) == 1, f"expected one @{type_}, found {found}"
    return found[0]


def main_app_settings() -> dict[str, Any]:
    """name -> value expression of every app setting of the Function App."""
    main = INFRA / "main.bicep"
    api_module = parse(main)["modules"]["api"]
    assert api_module["detail"]["path"] == "app/api.bicep"
    api = INFRA / "app" / "api.bicep"
    site = one(api, "Microsoft.Web/sites")
    # siteConfig.appSettings is exactly concat(hostSettings, wpmsyncSettings), nothing else
    concat = site["properties"]["siteConfig"]["appSettings"]["function"]
    assert concat["type"] == "concat"
    assert list(concat["parameters"].values()) == ["hostSettings", "wpmsyncSettings"]
    assert not resources(api, "Microsoft.Web/sites/config"), "app settings live in siteConfig only"
    entries = list(variable(api, "hostSettings")) + list(body(api_module)["params"]["wpmsyncSettings"])
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"an app setting is set twice: {names}"
    return {e["name"]: expr(e["value"]) for e in entries}


# ---------------------------------------------------------------- parsing, layout, azd

def test_every_bicep_file_parses():
    files = bicep_files()
    assert INFRA / "main.bicep" in files and len(files) >= 5
    for path in files:
        parsed = parse(path)
        assert parsed.get("resources") or parsed.get("modules"), path


def test_modules_exist_and_main_is_resource_group_scoped():
    main = parse(INFRA / "main.bicep")
    assert main["globals"]["scope"]["value"] == "resourceGroup"
    for path in bicep_files():
        for name, module in parse(path).get("modules", {}).items():
            target = (path.parent / module["detail"]["path"]).resolve()
            assert target.is_file(), f"{path.name}: module {name} -> missing {target}"


def test_parameters_file_matches_main_bicep():
    params = parse(INFRA / "main.bicep")["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(params), f"unknown parameters: {set(given) - set(params)}"
    required = {name for name, p in params.items() if "default" not in p}
    assert required <= set(given), f"required parameters missing: {required - set(given)}"
    for name, p in params.items():
        if any(d["type"] == "secure" for d in p["decorators"]):
            assert p.get("default", "") == "", f"@secure() {name} has a default value"


def test_azure_yaml_describes_the_function_app():
    text = (ROOT / "azure.yaml").read_text()
    assert re.search(r"^services:\n  api:\n", text, re.MULTILINE)
    service = text.split("  api:\n", 1)[1]
    for line in ("project: .", "language: python", "host: function", "remoteBuild: true"):
        assert re.search(rf"^    {re.escape(line)}$", service, re.MULTILINE), line
    assert re.search(r"^  path: infra$", text, re.MULTILINE) and re.search(r"^  module: main$", text, re.MULTILINE)
    site = one(INFRA / "app" / "api.bicep", "Microsoft.Web/sites")
    assert "'azd-service-name'" in json.dumps(site["tags"]) and '"api"' in json.dumps(site["tags"])


# ---------------------------------------------------------------- settings

def test_settings_mapping_is_complete_and_explicit():
    sample = sample_settings()
    code = settings_read_by_code()
    # the code <-> sample direction (an issue-12 setting may reach the sample first, see above)
    assert code | {"FUNCTIONS_WORKER_RUNTIME"} | (set(ISSUE_12_SETTINGS) & sample) == sample
    assert set(ISSUE_12_SETTINGS) <= sample
    assert set(LOCAL_ONLY) <= sample and set(OPTIONAL_IN_AZURE) <= sample
    assert not set(LOCAL_ONLY) & set(OPTIONAL_IN_AZURE)
    assert not set(HOST_SETTINGS_IN_AZURE) & sample


def test_bicep_sets_exactly_the_settings_the_code_needs_in_azure():
    bicep = set(main_app_settings())
    expected = (sample_settings() - set(LOCAL_ONLY) - set(OPTIONAL_IN_AZURE)) | set(HOST_SETTINGS_IN_AZURE)
    assert bicep == expected, (
        f"set by the Bicep but not expected: {sorted(bicep - expected)}; "
        f"expected but not set: {sorted(expected - bicep)}"
    )
    for local, (replacements, why) in LOCAL_ONLY.items():
        assert local not in bicep, f"{local} must not be an app setting in Azure: {why}"
        assert set(replacements) <= bicep, f"{local} is replaced by {replacements}: {why}"


def test_the_code_accepts_the_azure_replacements():
    # identity-based storage: the queue client reads AzureWebJobsStorage__accountName
    env = {"AzureWebJobsStorage__accountName": "stwpmsyncabc"}
    class Credential:  # never asked for a token here
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise AssertionError("no network in this test")

    client = wpmsync_queue.service_client_from_env(env, credential_factory=lambda client_id: Credential())
    assert client.url.startswith("https://stwpmsyncabc.queue.core.windows.net")
    # secrets: Key Vault URL + secret names replace the values
    for name_setting, default_name, env_fallback in (wpmsync_secrets._HOOK_SECRET,
                                                     wpmsync_secrets._HOOK_SECRET_PREVIOUS,
                                                     wpmsync_secrets._DB_PASSWORD):
        assert env_fallback in LOCAL_ONLY and name_setting in main_app_settings()
        assert wpmsync_secrets.KEY_VAULT_URL_SETTING in LOCAL_ONLY[env_fallback][0]
        assert json.loads(SAMPLE.read_text())["Values"][name_setting] == default_name


def test_setting_values_point_at_the_deployed_resources():
    main = INFRA / "main.bicep"
    settings = main_app_settings()
    assert settings["WPMSYNC_HOOK_SECRET_NAME"] == "hookSecretName"
    assert variable(main, "hookSecretName") == wpmsync_secrets._HOOK_SECRET[1]
    assert settings["WPMSYNC_HOOK_SECRET_PREVIOUS_NAME"] == "hookSecretPreviousName"
    assert variable(main, "hookSecretPreviousName") == wpmsync_secrets._HOOK_SECRET_PREVIOUS[1]
    assert settings["WPMSYNC_DB_PASSWORD_SECRET_NAME"] == "dbPasswordSecretName"
    assert variable(main, "dbPasswordSecretName") == wpmsync_secrets._DB_PASSWORD[1]
    assert settings["WPMSYNC_KEY_VAULT_URL"] == "vault.outputs.uri"
    assert settings["WPMSYNC_DB_SSL"] == "true"  # TLS to MySQL, always
    assert settings["WPMSYNC_DB_PORT"] == "3306"
    assert settings["WPMSYNC_DB_AUTH"] == "dbAuth"
    allowed = parse(main)["parameters"]["dbAuth"]["decorators"]
    assert {"password", "entra"} == set(next(d for d in allowed if d["type"] == "allowed")["argument"])
    assert settings["AzureWebJobsStorage__accountName"] == "storage.name"
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "applicationInsights.properties.ConnectionString"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == settings["AZURE_CLIENT_ID"] == "identityClientId"


def test_no_secret_reaches_an_app_setting_or_an_output():
    """No @secure() parameter in outputs or app settings, in any file; no KeyVault reference either."""
    for path in bicep_files():
        parsed = parse(path)
        secure = {name for name, p in parsed.get("parameters", {}).items()
                  if any(d["type"] == "secure" for d in p["decorators"])}
        for name, output in parsed.get("outputs", {}).items():
            text = json.dumps(output)
            for param in secure:
                assert not re.search(rf'(?<![\w.]){param}(?![\w])', text), f"{path.name}: output {name} uses {param}"
            assert not re.search(r"secret|password", name, re.IGNORECASE), f"{path.name}: output {name}"
    settings = json.dumps(main_app_settings())
    for param in ("hookSecret", "hookSecretPrevious", "dbPassword"):
        assert not re.search(rf'(?<![\w.]){param}(?![\w])', settings)
    assert "@Microsoft.KeyVault" not in settings  # the code reads Key Vault itself


# ---------------------------------------------------------------- security properties

def test_function_app_is_flex_consumption_linux_python_311_locked_down():
    api = INFRA / "app" / "api.bicep"
    plan = one(api, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"} and plan["properties"]["reserved"] is True
    site = one(api, "Microsoft.Web/sites")
    props = site["properties"]
    assert site["kind"] == "functionapp,linux"
    assert site["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {"'${identityId}'": {}}}
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    policies = {p["name"]: p["properties"]["allow"]
                for p in resources(api, "Microsoft.Web/sites/basicPublishingCredentialsPolicies").values()}
    assert policies == {"ftp": False, "scm": False}


def test_storage_is_identity_only_with_the_batch_queues():
    path = INFRA / "app" / "storage.bicep"
    props = one(path, "Microsoft.Storage/storageAccounts")["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    queues = {variable(path, q["name"]) if q["name"] in parse(path)["variables"] else q["name"]
              for q in resources(path, "Microsoft.Storage/storageAccounts/queueServices/queues").values()}
    name = wpmsync_queue.DEFAULT_QUEUE_NAME
    assert queues == {name, name + wpmsync_queue.POISON_SUFFIX}
    assert one(path, "Microsoft.Storage/storageAccounts/blobServices/containers")["properties"]["publicAccess"] == "None"


def test_key_vault_writes_the_previous_hook_secret_before_the_current_one():
    """A rotation deployed in one go (hookSecretPrevious=old, hookSecret=new) must never let an
    instance read the new current secret without the previous one (see wpmsync/secrets.py)."""
    path = INFRA / "app" / "keyvault.bicep"
    modules = parse(path)["modules"]
    previous, current = modules["hookSecretPreviousVersion"], modules["hookSecretVersion"]
    assert body(previous)["params"]["name"] == "hookSecretPreviousName"
    assert body(previous)["params"]["value"] == "hookSecretPrevious"
    assert body(current)["dependsOn"] == ["hookSecretPreviousVersion"]
    params = body(parse(INFRA / "main.bicep")["modules"]["vault"])["params"]
    assert (params["hookSecretPreviousName"], params["hookSecretPrevious"]) == \
        ("hookSecretPreviousName", "hookSecretPrevious")
    secure = parse(path)["parameters"]["hookSecretPrevious"]
    assert {"type": "secure"} in secure["decorators"] and secure["default"] == ""


def test_key_vault_rbac_soft_delete_purge_protection():
    props = one(INFRA / "app" / "keyvault.bicep", "Microsoft.KeyVault/vaults")["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert "accessPolicies" not in props


def test_role_assignments_of_the_app_identity():
    path = INFRA / "app" / "rbac.bicep"
    assigned = set()
    for assignment in resources(path, "Microsoft.Authorization/roleAssignments").values():
        text = json.dumps(assignment["properties"]["roleDefinitionId"])
        assigned |= {name for name in parse(path)["variables"] if re.search(rf'"{name}"', text)}
    expected = {"storageBlobDataOwner", "storageQueueDataContributor", "storageTableDataContributor",
                "keyVaultSecretsUser", "monitoringMetricsPublisher", "keyVaultSecretsOfficer"}
    assert assigned == expected
    ids = {name: variable(path, name) for name in expected}
    assert ids["storageBlobDataOwner"] == "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
    assert ids["storageQueueDataContributor"] == "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
    assert ids["storageTableDataContributor"] == "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
    assert ids["keyVaultSecretsUser"] == "4633458b-17de-408a-b874-0445c86b69e6"
    assert ids["monitoringMetricsPublisher"] == "3913510d-42f4-4e42-8a64-420c390055eb"


def test_mysql_requires_tls_and_lets_the_app_in():
    access = INFRA / "app" / "mysql-access.bicep"
    configs = resources(access, "Microsoft.DBforMySQL/flexibleServers/configurations")
    assert [(c["name"], c["properties"]["value"]) for c in configs.values()] == [("require_secure_transport", "ON")]
    rules = resources(access, "Microsoft.DBforMySQL/flexibleServers/firewallRules")
    assert [(r["properties"]["startIpAddress"], r["properties"]["endIpAddress"]) for r in rules.values()] \
        == [("0.0.0.0", "0.0.0.0")]  # Azure services only, the documented default without VNet
    main = parse(INFRA / "main.bicep")
    params = body(main["modules"]["mysqlAccess"])["params"]
    # a new server always gets require_secure_transport; an existing one unless turned off
    # (pycep mis-groups ``a == b || c``, so main.bicep parenthesises comparisons)
    assert expr(params["requireSecureTransport"]) == {"operator": {"type": "or", "operands": {
        "operand_1": {"operator": {"type": "equals", "operands": {"operand_1": "mysqlMode", "operand_2": "new"}}},
        "operand_2": "mysqlRequireSecureTransport"}}}
    server = one(INFRA / "app" / "mysql-new.bicep", "Microsoft.DBforMySQL/flexibleServers")
    assert server["properties"]["administratorLoginPassword"] == "administratorLoginPassword"
    secure = parse(INFRA / "app" / "mysql-new.bicep")["parameters"]["administratorLoginPassword"]
    assert {"type": "secure"} in secure["decorators"]


def test_monitoring_sends_logs_to_log_analytics():
    path = INFRA / "app" / "monitoring.bicep"
    ai = one(path, "Microsoft.Insights/components")["properties"]
    assert expr(ai["WorkspaceResourceId"]) == "logAnalytics.id"
    assert ai["DisableLocalAuth"] is True


# ---------------------------------------------------------------- identity

def test_the_app_runs_as_a_user_assigned_identity_that_has_its_roles_first():
    """The identity is its own resource, its roles are assigned to it (not to the app), and the
    app is created after them: the first start does not race the role assignments."""
    ident = one(INFRA / "app" / "identity.bicep", "Microsoft.ManagedIdentity/userAssignedIdentities")
    assert ident["name"] == "name"
    outputs = parse(INFRA / "app" / "identity.bicep")["outputs"]
    assert {"id", "principalId", "clientId"} <= set(outputs)
    main = parse(INFRA / "main.bicep")
    modules = main["modules"]
    assert modules["appIdentity"]["detail"]["path"] == "app/identity.bicep"
    api, rbac = body(modules["api"]), body(modules["rbac"])
    assert expr(api["params"]["identityId"]) == "appIdentity.outputs.id"
    assert expr(api["params"]["identityClientId"]) == "appIdentity.outputs.clientId"
    assert expr(rbac["params"]["appPrincipalId"]) == "appIdentity.outputs.principalId"
    assert "rbac" in api["dependsOn"], "the app must wait for its identity's roles"
    assert "api" not in json.dumps(rbac["params"]), "the roles must not depend on the app"
    assert expr(main["outputs"]["APP_CLIENT_ID"]["value"]) == "appIdentity.outputs.clientId"
    assert expr(main["outputs"]["APP_PRINCIPAL_ID"]["value"]) == "appIdentity.outputs.principalId"
    # every role of the app is the identity's, assigned as a service principal (no replication wait)
    path = INFRA / "app" / "rbac.bicep"
    for name, assignment in resources(path, "Microsoft.Authorization/roleAssignments").items():
        if assignment["properties"]["principalId"] != "operatorPrincipalId":
            assert assignment["properties"]["principalId"] == "appPrincipalId", name
            assert assignment["properties"]["principalType"] == "ServicePrincipal", name
    # no system-assigned identity anywhere in the app: nothing may silently fall back to one
    assert "SystemAssigned" not in (INFRA / "app" / "api.bicep").read_text()


def test_the_code_picks_the_user_assigned_identity(monkeypatch):
    """The settings the Bicep sets for the identity are the ones the code's clients read."""
    settings = main_app_settings()
    # the queue sender: AzureWebJobsStorage__clientId, like the host
    asked: list[str | None] = []

    class Credential:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise AssertionError("no network in this test")

    def factory(client_id: str | None) -> Any:
        asked.append(client_id)
        return Credential()

    env = {"AzureWebJobsStorage__accountName": "stwpmsyncabc", "AzureWebJobsStorage__clientId": "client-1"}
    wpmsync_queue.service_client_from_env(env, credential_factory=factory)
    assert asked == ["client-1"] and "AzureWebJobsStorage__clientId" in settings
    # Key Vault and the MySQL token: DefaultAzureCredential with no explicit client id, so it
    # takes AZURE_CLIENT_ID (an explicit managed_identity_client_id would override it)
    import azure.identity

    made: list[dict[str, Any]] = []
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", lambda **kw: made.append(kw) or Credential())
    wpmsync_secrets._default_credential()
    assert made == [{}] and "AZURE_CLIENT_ID" in settings


# ---------------------------------------------------------------- scale-out and the writer cap

def test_maximum_instance_count_is_a_flex_parameter_reachable_from_azd():
    param = parse(INFRA / "main.bicep")["parameters"]["maximumInstanceCount"]
    assert param["type"] == "int" and param["default"] == 100
    assert (decorator(param, "min_value"), decorator(param, "max_value")) == (40, 1000)  # Flex's range
    variable_name, default = azd_parameter("maximumInstanceCount")
    assert variable_name.endswith("MAXIMUM_INSTANCE_COUNT") and default == "100"
    api = body(parse(INFRA / "main.bicep")["modules"]["api"])
    assert api["params"]["maximumInstanceCount"] == "maximumInstanceCount"
    site = one(INFRA / "app" / "api.bicep", "Microsoft.Web/sites")
    scale = site["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"


def test_host_json_runs_no_more_queue_messages_per_instance_than_the_writer_cap():
    """One instance runs at most batchSize + newBatchThreshold messages of a queue function at
    once (Microsoft's host.json reference for the queue trigger); that must not exceed the
    Bicep's default WPMSYNC_MAX_PARALLEL_BATCHES, so one instance never holds more batches than
    may write. The Bicep passes the cap to the app."""
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    # both explicit: newBatchThreshold's default depends on the vCPUs (N * batchSize / 2)
    batch_size, threshold = queues["batchSize"], queues["newBatchThreshold"]
    param = parse(INFRA / "main.bicep")["parameters"]["maxParallelBatches"]
    assert param["type"] == "int" and param["default"] == 4
    assert (decorator(param, "min_value"), decorator(param, "max_value")) == (1, 64)  # wpmsync/config.py's range
    assert 1 <= batch_size and batch_size + threshold <= param["default"]
    assert threshold >= 1  # a steady pipeline: the next message is fetched before the last one ends
    assert azd_parameter("maxParallelBatches") == ("WPMSYNC_MAX_PARALLEL_BATCHES", "4")
    assert main_app_settings()["WPMSYNC_MAX_PARALLEL_BATCHES"] == {
        "function": {"type": "string", "parameters": {"value_to_convert": "maxParallelBatches"}}}
    assert ISSUE_12_SETTINGS["WPMSYNC_MAX_PARALLEL_BATCHES"] == str(param["default"])
    # the limit is per queue-triggered function: exactly one function takes the batch queue
    triggers = re.findall(r"queue_trigger\([^)]*queue_name=([^,)]+)",
                          "".join(p.read_text() for p in (ROOT / "blueprints").glob("*.py")))
    assert [q.strip() for q in triggers].count("common.QUEUE_NAME") == 1, triggers


def test_issue_12_settings_are_in_the_sample_and_the_bicep():
    sample = json.loads(SAMPLE.read_text())["Values"]
    settings = main_app_settings()
    params = parse(INFRA / "main.bicep")["parameters"]
    for name, value in ISSUE_12_SETTINGS.items():
        assert sample[name] == value, name
        assert name in settings, name
    assert settings["WPMSYNC_BATCH_SECONDS"] == "batchSeconds"
    assert params["batchSeconds"]["default"] == ISSUE_12_SETTINGS["WPMSYNC_BATCH_SECONDS"]
    assert settings["WPMSYNC_FULL_RECONCILE_SCHEDULE"] == "fullReconcileSchedule"
    schedule = params["fullReconcileSchedule"]["default"]
    assert schedule == ISSUE_12_SETTINGS["WPMSYNC_FULL_RECONCILE_SCHEDULE"]
    assert len(schedule.split()) == 6  # NCRONTAB: seconds first


# ---------------------------------------------------------------- the database's Entra steps

ENTRA_DOC = "https://learn.microsoft.com/azure/mysql/flexible-server/concepts-azure-ad-authentication"


def test_readme_entra_steps_for_mysql_are_complete():
    """Where a README creates the Entra user of the app identity, it turns off the tenant object-id
    check first (the user is created by the identity's client id) and names the exact Graph
    permissions of the server's identity, with Microsoft's doc."""
    readmes = [path for path in (ROOT / "README.md", INFRA / "README.md") if "CREATE AADUSER" in path.read_text()]
    assert INFRA / "README.md" in readmes
    for path in readmes:
        text = path.read_text()
        for block in re.findall(r"```sql\n(.*?)```", text, re.DOTALL):
            if "CREATE AADUSER" in block:
                off = block.find("SET aad_auth_validate_oids_in_tenant = OFF;")
                assert 0 <= off < block.find("CREATE AADUSER"), f"{path.name}: the check must be off first"
        assert "IDENTIFIED BY '<APP_CLIENT_ID>'" in text, path.name
        for permission in ("User.Read.All", "GroupMember.Read.All", "Application.Read.All"):
            assert f"`{permission}`" in text, f"{path.name}: {permission}"
        assert ENTRA_DOC in text, path.name


# ---------------------------------------------------------------- checkov

def _checkov_bin() -> str:
    exe = Path(sys.executable).parent / "checkov"
    if not exe.exists():
        pytest.fail(f"checkov is not installed next to {sys.executable} (requirements-dev.txt)")
    return str(exe)


def test_checkov_passes_with_only_commented_skips():
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "FALSE"}
    run = subprocess.run(
        [_checkov_bin(), "-d", str(INFRA), "--framework", "bicep", "--skip-download", "--compact",
         "-o", "json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert run.stdout.strip(), f"checkov printed nothing (exit {run.returncode}): {run.stderr[-2000:]}"
    report = json.loads(run.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    summary = [r["summary"] for r in reports]
    assert not failed, "\n".join(f"{c['check_id']} {c['resource']} {c['file_path']}: {c['check_name']}"
                                 for c in failed)
    assert all(s["parsing_errors"] == 0 for s in summary), summary
    assert sum(s["passed"] for s in summary) >= 20, summary
    assert run.returncode == 0, run.stderr[-2000:]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 20 and reason != "No comment provided", check["check_id"]
    # every skip comment in the Bicep is used (no stale skips)
    used = {(Path(c["file_abs_path"]).resolve(), c["check_id"]) for c in skipped}
    written = {(path.resolve(), m) for path in bicep_files()
               for m in re.findall(r"//\s*checkov:skip=([A-Z0-9_]+):", path.read_text())}
    assert written == used, f"unused: {written - used}; without a comment: {used - written}"
