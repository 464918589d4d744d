// oidc-provider as the token-endpoint peer of ./bench/run: one client (client_credentials,
// client_secret_basic) whose tokens are JWTs signed with Ed25519, as Postern's are. Runs one
// worker process per core (node:cluster), all sharing one signing key, so it may use the cores
// Postern uses. Reads OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET and OIDC_WORKERS (default: the
// number of cores) from the environment, so the secret never shows in the process list.
import cluster from 'node:cluster';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';

import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const clientId = process.env.OIDC_CLIENT_ID || 'bench-client';
const clientSecret = process.env.OIDC_CLIENT_SECRET;
if (!port || !clientSecret) {
  console.error('OIDC_PORT and OIDC_CLIENT_SECRET are required');
  process.exit(2);
}

if (cluster.isPrimary) {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'EdDSA', use: 'sig', kid: randomUUID() };
  const workers = Number(process.env.OIDC_WORKERS) || availableParallelism();
  for (let i = 0; i < workers; i += 1) cluster.fork({ OIDC_JWK: JSON.stringify(jwk), OIDC_COOKIE_KEY: randomUUID() });
  // A worker that dies takes the whole server down: the harness then reports the row as failed.
  cluster.on('exit', () => process.exit(1));
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const audience = 'urn:postern:bench';
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'EdDSA',
    }],
    jwks: { keys: [JSON.parse(process.env.OIDC_JWK)] },
    cookies: { keys: [process.env.OIDC_COOKIE_KEY] },
    ttl: { ClientCredentials: 3600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        getResourceServerInfo: () => ({
          audience,
          scope: '',
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'EdDSA' } },
        }),
      },
    },
  });
  provider.listen(port, '127.0.0.1');
}
