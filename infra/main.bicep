// wpmsync: everything the Functions app needs, in one resource group.
//
//   azd up                                   (azure.yaml at the repo root, parameters from main.parameters.json)
//   az deployment group create -g <rg> -f infra/main.bicep -p environmentName=<name> ...
//
// Resources (modules under app/):
//   identity.bicep     the app's user-assigned managed identity, created first
//   monitoring.bicep   Log Analytics workspace + workspace-based Application Insights (local auth off)
//   storage.bicep      storage account of the host and the batch queue (wpmsync-batches + -poison),
//                      deployment package container; shared keys off, reached with the app's identity
//   keyvault.bicep     Key Vault (RBAC, soft delete, purge protection) with the hook secret (and,
//                      while it is rotated, the previous one) and, for password sign-in, the
//                      database password
//   rbac.bicep         the app identity's roles on storage, Key Vault and Application Insights,
//                      assigned before the app exists
//   api.bicep          Flex Consumption plan + Function App (Linux, Python 3.11, the user-assigned
//                      identity, HTTPS only, TLS 1.2, FTP and basic publishing credentials off)
//                      + app settings
//   mysql-new.bicep    only with mysqlMode=new: an Azure Database for MySQL Flexible Server for trials
//   mysql-access.bicep the app let into the MySQL server (existing or new, maybe in another
//                      resource group): firewall rule for Azure services, require_secure_transport
// See infra/README.md for every parameter.
targetScope = 'resourceGroup'

// ---------------------------------------------------------------- general
@minLength(1)
@maxLength(64)
@description('azd environment name; seeds the unique suffix of every resource name.')
param environmentName string

@description('Region of every new resource (a region with Flex Consumption).')
param location string = resourceGroup().location

@description('Object id of a user or group that may manage the vault secrets (Key Vault Secrets Officer); azd passes the signed-in user. Empty: none.')
param principalId string = ''

@description('Function App name; empty: func-wpmsync-<suffix>.')
param functionAppName string = ''

// Flex Consumption takes 40 to 1000 (the Microsoft samples: @minValue(40), default 100).
// Scaling out is safe for the database: however many instances run, at most maxParallelBatches
// queue batches write at once (below), one instance runs at most 4 queue messages (host.json),
// and a job keeps only one message per lane (maxParallelBatches lanes) in the queue, so the
// scale controller, which sizes on queue length, asks for about one instance per job.
@description('Flex Consumption: most instances the app scales out to (40 to 1000). The database writers are capped by maxParallelBatches, not by this.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption: memory of one instance.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional VNet integration: resource id of a subnet delegated to Microsoft.App/environments that can reach MySQL. Empty: no VNet integration.')
param virtualNetworkSubnetId string = ''

// ---------------------------------------------------------------- secrets
@secure()
@description('The HMAC secret shared with WordPress (wp-config WPMSYNC_HOOK_SECRET), 16+ characters. Written to Key Vault when given; empty leaves the vault secret as it is (it must exist).')
param hookSecret string = ''

@secure()
@description('Only while the hook secret is rotated (README "Rotating the hook secret"): the old value, accepted and signed with beside hookSecret. Written to Key Vault, before hookSecret, when given; empty leaves the vault as it is (delete the vault secret to end the rotation).')
param hookSecretPrevious string = ''

@secure()
@description('MySQL password of dbUser (dbAuth=password), stored in Key Vault; with mysqlMode=new also the server admin password. Empty leaves the vault secret as it is.')
param dbPassword string = ''

// ---------------------------------------------------------------- MySQL
@description('existing: the WordPress server (the usual case); new: create a Flexible Server for trials.')
@allowed([
  'existing'
  'new'
])
param mysqlMode string = 'existing'

@description('MySQL Flexible Server name (existing: the WordPress one; new: empty picks mysql-wpmsync-<suffix>).')
param mysqlServerName string = ''

@description('Resource group of an existing server; empty: this resource group.')
param mysqlResourceGroupName string = ''

@description('Host name the app connects to; empty: <mysqlServerName>.mysql.database.azure.com.')
param dbHost string = ''

@description('The WordPress database.')
param dbName string = 'wordpress'

@description('MySQL user of the app (password: a MySQL user; entra: the name the managed identity was created with in MySQL).')
param dbUser string = 'wpmsync'

@description('password: dbPassword from Key Vault; entra: passwordless, a Microsoft Entra token of the app identity.')
@allowed([
  'password'
  'entra'
])
param dbAuth string = 'password'

@description('Add the firewall rule that lets Azure services (the Function App among them) reach the server. Turn off with VNet integration.')
param mysqlAllowAzureServices bool = true

@description('Set the server parameter require_secure_transport=ON (Azure default). New servers always get it.')
param mysqlRequireSecureTransport bool = true

@description('mysqlMode=new: SKU of the trial server.')
param mysqlSkuName string = 'Standard_B1ms'

@description('mysqlMode=new: tier of the trial server.')
@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
param mysqlSkuTier string = 'Burstable'

// ---------------------------------------------------------------- engine settings
@description('WordPress $table_prefix.')
param tablePrefix string = 'wp_'

@description('Which network of the database.')
param networkId string = '1'

@description('Memberships (users x sites) per batch, about.')
param batchSize string = '50000'

@description('Roles with level_N, N >= this, replicate only for a super-admin actor.')
param roleCeilingLevel string = '10'

@description('Seconds to wait for a lock on the same users.')
param lockTimeout string = '30'

@description('Days the undo journal keeps each change (the timer prunes older ones).')
param journalDays string = '30'

@description('Days an undelivered WordPress event may wait in the outbox before the timer reports and prunes it.')
param outboxDays string = '14'

@description('NCRONTAB of the reconcile timer.')
param reconcileSchedule string = '0 */15 * * * *'

// The writer cap (WPMSYNC_MAX_PARALLEL_BATCHES): at most this many queue batches write to the
// WordPress database at once across all instances (named-lock slots in the database; a batch
// without a free slot goes back to the queue with a delay). host.json lets one instance run
// batchSize + newBatchThreshold = 2 + 2 = 4 queue messages, this default, so one instance alone
// can fill every slot and never takes more messages than it could write; tests/test_infra.py
// keeps the two in step.
@description('WPMSYNC_MAX_PARALLEL_BATCHES: most queue batches writing to the database at once, across all instances (1 to 64).')
@minValue(1)
@maxValue(64)
param maxParallelBatches int = 4

// A string: Bicep has no decimal numbers, and the app reads plain decimals (0.1 to 60).
@description('WPMSYNC_BATCH_SECONDS: seconds one write transaction of a batch aims at, since WordPress waits behind it.')
param batchSeconds string = '1'

@description('WPMSYNC_FULL_RECONCILE_SCHEDULE: NCRONTAB of the full reconcile, nightly (Flex Consumption runs timers in UTC).')
param fullReconcileSchedule string = '0 30 2 * * *'

@description('The network URL for cache cleaning through the mu-plugin; empty: off.')
param wordpressUrl string = ''

// ---------------------------------------------------------------- names
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  app: 'wpmsync'
}
var appName = empty(functionAppName) ? 'func-wpmsync-${resourceToken}' : functionAppName
var identityName = 'id-wpmsync-${resourceToken}'
var storageAccountName = 'stwpmsync${take(resourceToken, 13)}'
var keyVaultName = 'kv-wpmsync-${take(resourceToken, 13)}'
var deploymentContainerName = 'app-package-${take(resourceToken, 13)}'
var serverName = empty(mysqlServerName) ? 'mysql-wpmsync-${resourceToken}' : mysqlServerName
var serverResourceGroup = ((mysqlMode == 'existing') && !empty(mysqlResourceGroupName)) ? mysqlResourceGroupName : resourceGroup().name
var databaseHost = empty(dbHost) ? '${serverName}.mysql.database.azure.com' : dbHost
var hookSecretName = 'wpmsync-hook-secret'
var hookSecretPreviousName = 'wpmsync-hook-secret-previous'
var dbPasswordSecretName = 'wpmsync-db-password'

// The app's identity first: its roles (rbac, below) are assigned before the app is created.
module appIdentity 'app/identity.bicep' = {
  name: 'identity'
  params: {
    location: location
    tags: tags
    name: identityName
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-wpmsync-${resourceToken}'
    applicationInsightsName: 'appi-wpmsync-${resourceToken}'
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    name: storageAccountName
    deploymentContainerName: deploymentContainerName
  }
}

module vault 'app/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    name: keyVaultName
    hookSecretName: hookSecretName
    hookSecret: hookSecret
    hookSecretPreviousName: hookSecretPreviousName
    hookSecretPrevious: hookSecretPrevious
    dbPasswordSecretName: dbPasswordSecretName
    dbPassword: (dbAuth == 'password') ? dbPassword : ''
  }
}

module newServer 'app/mysql-new.bicep' = if (mysqlMode == 'new') {
  name: 'mysql-new'
  params: {
    location: location
    tags: tags
    name: serverName
    administratorLogin: dbUser
    administratorLoginPassword: dbPassword
    databaseName: dbName
    skuName: mysqlSkuName
    skuTier: mysqlSkuTier
  }
}

module mysqlAccess 'app/mysql-access.bicep' = {
  name: 'mysql-access'
  scope: resourceGroup(serverResourceGroup)
  params: {
    serverName: serverName
    allowAzureServices: mysqlAllowAzureServices
    requireSecureTransport: (mysqlMode == 'new') || mysqlRequireSecureTransport
  }
  dependsOn: [
    newServer
  ]
}

// The roles of the app identity, made against the user-assigned identity (not the app), so
// they can be, and are, in place before the app exists.
module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  params: {
    appPrincipalId: appIdentity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: vault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    operatorPrincipalId: principalId
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  params: {
    location: location
    tags: tags
    name: appName
    planName: 'plan-wpmsync-${resourceToken}'
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    virtualNetworkSubnetId: virtualNetworkSubnetId
    identityId: appIdentity.outputs.id
    identityClientId: appIdentity.outputs.clientId
    // Every setting the code reads (local.settings.sample.json) that Azure needs; tests/test_infra.py
    // keeps this list, the sample and the code equal. No secret value: Key Vault has those.
    wpmsyncSettings: [
      {
        name: 'WPMSYNC_DB_HOST'
        value: databaseHost
      }
      {
        name: 'WPMSYNC_DB_PORT'
        value: '3306'
      }
      {
        name: 'WPMSYNC_DB_USER'
        value: dbUser
      }
      {
        name: 'WPMSYNC_DB_NAME'
        value: dbName
      }
      {
        name: 'WPMSYNC_DB_SSL'
        value: 'true'
      }
      {
        name: 'WPMSYNC_DB_AUTH'
        value: dbAuth
      }
      {
        name: 'WPMSYNC_TABLE_PREFIX'
        value: tablePrefix
      }
      {
        name: 'WPMSYNC_NETWORK_ID'
        value: networkId
      }
      {
        name: 'WPMSYNC_BATCH_SIZE'
        value: batchSize
      }
      {
        name: 'WPMSYNC_ROLE_CEILING_LEVEL'
        value: roleCeilingLevel
      }
      {
        name: 'WPMSYNC_LOCK_TIMEOUT'
        value: lockTimeout
      }
      {
        name: 'WPMSYNC_JOURNAL_DAYS'
        value: journalDays
      }
      {
        name: 'WPMSYNC_OUTBOX_DAYS'
        value: outboxDays
      }
      {
        name: 'WPMSYNC_RECONCILE_SCHEDULE'
        value: reconcileSchedule
      }
      {
        name: 'WPMSYNC_MAX_PARALLEL_BATCHES'
        value: string(maxParallelBatches)
      }
      {
        name: 'WPMSYNC_BATCH_SECONDS'
        value: batchSeconds
      }
      // The full reconcile timer's schedule, read when the host indexes the functions
      // (blueprints/reconcile.py); set here so it shows, and changes, as an app setting.
      {
        name: 'WPMSYNC_FULL_RECONCILE_SCHEDULE'
        value: fullReconcileSchedule
      }
      {
        name: 'WPMSYNC_KEY_VAULT_URL'
        value: vault.outputs.uri
      }
      {
        name: 'WPMSYNC_DB_PASSWORD_SECRET_NAME'
        value: dbPasswordSecretName
      }
      {
        name: 'WPMSYNC_HOOK_SECRET_NAME'
        value: hookSecretName
      }
      {
        name: 'WPMSYNC_HOOK_SECRET_PREVIOUS_NAME'
        value: hookSecretPreviousName
      }
      {
        name: 'WPMSYNC_WORDPRESS_URL'
        value: wordpressUrl
      }
    ]
  }
  // Created only once its identity holds every role: the first start does not race them.
  dependsOn: [
    rbac
  ]
}

// Outputs: names and URLs only, never a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output SERVICE_API_NAME string = api.outputs.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output WPMSYNC_ENDPOINT string = '${api.outputs.uri}/api'
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output AZURE_KEY_VAULT_URL string = vault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APP_PRINCIPAL_ID string = appIdentity.outputs.principalId
output APP_CLIENT_ID string = appIdentity.outputs.clientId
output APP_IDENTITY_NAME string = appIdentity.outputs.name
output MYSQL_HOST string = databaseHost
