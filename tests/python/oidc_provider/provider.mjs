// A real OpenID Provider for Lightbox's OIDC sign-in tests: panva's certified
// oidc-provider with its development login and consent pages (any login name
// is accepted; the account named by it must exist below, any password).
//
//   node provider.mjs '<json>'   with {"port", "client": {client_id, client_secret,
//                                 redirect_uri}, "accounts_file": PATH}
//
// PATH holds {login: {email, email_verified?, xms_edov?}}; it is read at every sign-in, so
// a test adds the people it needs while the provider runs.
//
// Prints "oidc provider listening on http://localhost:PORT" when it serves (on 127.0.0.1).
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
// `localhost`, not 127.0.0.1, where Lightbox runs: another site, as a real provider is, so
// the browser's SameSite rules apply to the way back.
const issuer = `http://localhost:${config.port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client.client_id,
    client_secret: config.client.client_secret,
    redirect_uris: [config.client.redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // Lightbox must send a PKCE challenge even as a confidential client.
  pkce: { required: () => true },
  // `xms_edov`: Entra ID's "email domain owner verified", sent instead of email_verified.
  claims: { openid: ['sub'], email: ['email', 'email_verified', 'xms_edov'] },
  // The ID token itself carries the email claims (not only /userinfo).
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    const account = JSON.parse(readFileSync(config.accounts_file, 'utf8'))[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['lightbox-test-only-key'] },
});
provider.proxy = false;

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc provider listening on ${issuer}`);
});
