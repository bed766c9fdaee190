// Key Vault in RBAC mode with soft delete and purge protection. It holds the hook secret (and,
// while it is rotated, the previous one) and, for password sign-in, the database password. The app reads them with its managed identity
// (Key Vault Secrets User, see rbac.bicep); no secret value is an app setting or an output.
param location string
param tags object = {}
param name string
param hookSecretName string
param hookSecretPreviousName string
param dbPasswordSecretName string

@secure()
@description('Written as a new version of the hook secret when not empty.')
param hookSecret string = ''

@secure()
@description('Written as a new version of the previous hook secret when not empty (a rotation).')
param hookSecretPrevious string = ''

@secure()
@description('Written as a new version of the database password secret when not empty.')
param dbPassword string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109: without VNet integration the Function App reaches the vault over its public endpoint, and App Service is not a trusted service for the firewall bypass; access is by RBAC only
    // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Each secret is written only when its value is given (a module, so the condition sits on the
// module and the secret resource itself stays plain for the static checks).
// The previous hook secret is written before the current one: an app instance that reads the
// pair in between sees (old, old), never (new, no previous), which would refuse WordPress while
// it still signs with the old secret only.
module hookSecretPreviousVersion 'keyvault-secret.bicep' = if (!empty(hookSecretPrevious)) {
  name: 'secret-${hookSecretPreviousName}'
  params: {
    vaultName: vault.name
    name: hookSecretPreviousName
    value: hookSecretPrevious
  }
}

module hookSecretVersion 'keyvault-secret.bicep' = if (!empty(hookSecret)) {
  name: 'secret-${hookSecretName}'
  params: {
    vaultName: vault.name
    name: hookSecretName
    value: hookSecret
  }
  dependsOn: [
    hookSecretPreviousVersion
  ]
}

module dbPasswordVersion 'keyvault-secret.bicep' = if (!empty(dbPassword)) {
  name: 'secret-${dbPasswordSecretName}'
  params: {
    vaultName: vault.name
    name: dbPasswordSecretName
    value: dbPassword
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
