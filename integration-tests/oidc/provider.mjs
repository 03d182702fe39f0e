// A real OpenID Provider for the console sign-in tests: panva's oidc-provider (installed
// by scripts/setup-oidc.sh), with its development login and consent pages, on loopback.
//
// Environment: OIDC_PROVIDER_MODULE (path to oidc-provider's entry file), OIDC_CLIENT_ID,
// OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI, OIDC_ACCOUNTS ({"login": {"email", "groups"}}).
// Prints one JSON line {"issuer": ...} once it listens on a free port.
import http from 'node:http';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS);

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: process.env.OIDC_CLIENT_ID,
      client_secret: process.env.OIDC_CLIENT_SECRET,
      redirect_uris: [process.env.OIDC_REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // Scope claims go into the ID token too (the gateway reads groups from it).
    conformIdTokenClaims: false,
    async findAccount(ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: account.email, email_verified: true, name: id, groups: account.groups };
        },
      };
    },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['switchyard-test-only-cookie-key'] },
  });
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});
