// The storage account of the Functions host and of the batch queue. Everything reaches it with
// the Function App's managed identity (AzureWebJobsStorage__accountName): shared-key access is
// off, which Flex Consumption supports because its deployment storage authenticates with the
// identity too.
param location string
param tags object = {}
param name string
@description('Blob container that holds the app package (Flex Consumption deployment storage).')
param deploymentContainerName string

// The queue the code sends batches to and the queue trigger listens on (wpmsync/queue.py
// DEFAULT_QUEUE_NAME), and the poison queue the host moves failed messages to.
var batchQueueName = 'wpmsync-batches'
var poisonQueueName = 'wpmsync-batches-poison'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches its storage over the public endpoint; access is by Entra identity only (shared keys off)
    // checkov:skip=CKV_AZURE_59: same reason: the app and azd deploy need the public endpoint when no VNet is used
    // checkov:skip=CKV_AZURE_206: LRS is enough: queue messages are retried and batches are idempotent; the reconcile timer repairs any loss
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      services: {
        blob: {
          enabled: true
        }
        queue: {
          enabled: true
        }
      }
    }
  }
}

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobServices
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueServices 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource batchQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueServices
  name: batchQueueName
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueServices
  name: poisonQueueName
}

output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueNames array = [
  batchQueue.name
  poisonQueue.name
]
