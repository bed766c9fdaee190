// The Function App on the Flex Consumption plan (Linux, Python 3.11) with a system-assigned
// managed identity. The runtime comes from functionAppConfig.runtime (Flex has no
// FUNCTIONS_WORKER_RUNTIME app setting); the host storage is identity-based
// (AzureWebJobsStorage__accountName), and so is the deployment package container.
param location string
param tags object = {}
param name string
param planName string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param maximumInstanceCount int = 10
param instanceMemoryMB int = 2048
param virtualNetworkSubnetId string = ''

@description('The WPMSYNC_* app settings, [{name, value}] (no secret among them: secrets come from Key Vault).')
param wpmsyncSettings array

// The host's settings: identity-based storage (no connection string, no key) and Application
// Insights with Entra authentication (local auth is off).
var hostSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.name
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: applicationInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'Authorization=AAD'
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
  identity: {
    type: 'SystemAssigned'
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
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
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
output principalId string = app.identity.principalId
