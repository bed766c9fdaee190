// Lets the Function App into the MySQL Flexible Server (existing or new; deployed into the
// server's own resource group) and requires TLS.
//
// Flex Consumption has no fixed outbound addresses, so without VNet integration the firewall
// rule 0.0.0.0-0.0.0.0 ("allow public access from any Azure service within Azure") is how the
// app gets in; the MySQL user and TLS still guard the server. With VNet integration
// (virtualNetworkSubnetId) pass allowAzureServices=false and reach the server through its
// VNet or a private endpoint instead (infra/README.md).
param serverName string
param allowAzureServices bool = true
param requireSecureTransport bool = true

resource server 'Microsoft.DBforMySQL/flexibleServers@2023-12-30' existing = {
  name: serverName
}

resource azureServices 'Microsoft.DBforMySQL/flexibleServers/firewallRules@2023-12-30' = if (allowAzureServices) {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource secureTransport 'Microsoft.DBforMySQL/flexibleServers/configurations@2023-12-30' = if (requireSecureTransport) {
  parent: server
  name: 'require_secure_transport'
  properties: {
    value: 'ON'
    source: 'user-override'
  }
}
