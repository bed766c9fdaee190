// One secret in the vault (a new version when the value changes).
param vaultName string
param name string

@secure()
param value string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  properties: {
    // checkov:skip=CKV_AZURE_41: the hook secret and the database password are rotated by hand (infra/README.md: hook secret together with wp-config.php, password together with the MySQL user); an expiry would silently stop the app
    value: value
    contentType: 'text/plain'
  }
}
