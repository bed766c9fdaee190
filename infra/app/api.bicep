// The Function App on the Flex Consumption plan (Linux, Python 3.11), running as the
// user-assigned managed identity of identity.bicep (no system-assigned one). The runtime comes
// from functionAppConfig.runtime (Flex has no FUNCTIONS_WORKER_RUNTIME app setting); the host
// storage is identity-based (AzureWebJobsStorage__accountName), and so is the deployment
// package container.
param location string
param tags object = {}
param name string
param planName string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param maximumInstanceCount int = 100
param instanceMemoryMB int = 2048
param virtualNetworkSubnetId string = ''

@description('Resource id of the user-assigned identity the app runs as (identity.bicep).')
param identityId string

@description('Client id of that identity: every client in the app picks it with this id.')
param identityClientId string

@description('The WPMSYNC_* app settings, [{name, value}] (no secret among them: secrets come from Key Vault).')
param wpmsyncSettings array

// The host's (and the Azure SDK's) settings: identity-based storage (no connection string, no
// key) and Application Insights with Entra authentication (local auth is off), all with the
// user-assigned identity. An app with only a user-assigned identity must name it everywhere:
// there is no default identity to fall back on.
var hostSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.name
  }
  // The host's storage (leases, timers, the queue trigger) with the user-assigned identity;
  // wpmsync/queue.py reads __clientId too when it sends batch messages.
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  // DefaultAzureCredential (wpmsync/secrets.py: Key Vault and, with dbAuth=entra, the MySQL
  // token) takes the user-assigned identity from AZURE_CLIENT_ID.
  {
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: applicationInsights.properties.ConnectionString
  }
  // Telemetry with Entra auth as the user-assigned identity (Monitoring Metrics Publisher).
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    // checkov:skip=CKV_AZURE_225: zone redundancy for Flex Consumption exists only in some regions and would fail the deployment elsewhere; a lost instance only delays queue messages, which are retried
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  // Only the user-assigned identity: its roles were assigned before this app was created.
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_17: WordPress calls with a function key or an HMAC signature, not a client certificate
    // checkov:skip=CKV_AZURE_222: WordPress (on the internet or another network) must reach the hooks endpoint
    // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero; there is no instance count or failover setting here
    // checkov:skip=CKV_AZURE_213: Flex Consumption scales to zero; a health check ping would keep an instance warm (GET /api/health exists for monitoring)
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(hostSettings, wpmsyncSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          // The package is read with the user-assigned identity (Storage Blob Data Owner).
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      // maximumInstanceCount may be large (main.bicep): the database writers are capped by the
      // app itself (WPMSYNC_MAX_PARALLEL_BATCHES), not by the instance count.
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP and no basic-auth (publishing profile) deployments: azd deploys with Entra auth.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
output uri string = 'https://${app.properties.defaultHostName}'
