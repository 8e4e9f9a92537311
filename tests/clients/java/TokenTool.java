// The Java Admin's delegation-token calls, as kafka-delegation-tokens.sh makes them, for the
// token tests (tests/clients/test_delegation_tokens.py). One JSON line on stdout.
//
//   create BOOTSTRAP CLIENT_PROPS OWNER RENEWERS MAX_LIFETIME_MS
//                      createDelegationToken; OWNER "User:x" or "-" (the requester), RENEWERS
//                      "User:a,User:b" or "-": {"token": TOKEN} or {"error": "ErrorClass: message"}
//   describe BOOTSTRAP CLIENT_PROPS OWNERS
//                      describeDelegationToken; OWNERS "User:a,..." or "-" (all):
//                      {"tokens": [TOKEN, ...]} (sorted by id) or {"error": ...}
//   renew BOOTSTRAP CLIENT_PROPS HMAC PERIOD_MS    renewDelegationToken: {"expiry": ms} or {"error": ...}
//   expire BOOTSTRAP CLIENT_PROPS HMAC PERIOD_MS   expireDelegationToken: {"expiry": ms} or {"error": ...}
//   create-renew BOOTSTRAP CLIENT_PROPS OTHER_BOOTSTRAP COUNT PERIOD_MS
//                      COUNT times: createDelegationToken through an Admin of BOOTSTRAP, then at
//                      once renewDelegationToken (PERIOD_MS) and expireDelegationToken (now)
//                      through a second Admin of OTHER_BOOTSTRAP, already connected (each Admin
//                      sends to the node it picks):
//                      {"renewed": [ms, ...], "expired": [ms, ...]} or {"error": ...}
//
// TOKEN is {"id", "hmac" (base64), "owner", "requester", "renewers", "issue", "expiry", "max"}.
// HMAC is base64. CLIENT_PROPS is k=v pairs separated by ';' (sasl.jaas.config last).

import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.CreateDelegationTokenOptions;
import org.apache.kafka.clients.admin.DescribeDelegationTokenOptions;
import org.apache.kafka.clients.admin.ExpireDelegationTokenOptions;
import org.apache.kafka.clients.admin.RenewDelegationTokenOptions;
import org.apache.kafka.common.security.auth.KafkaPrincipal;
import org.apache.kafka.common.security.token.delegation.DelegationToken;
import org.apache.kafka.common.security.token.delegation.TokenInformation;

public class TokenTool {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        String rest = args[2];
        while (!rest.isEmpty() && !rest.equals("-")) {
            int eq = rest.indexOf('=');
            String key = rest.substring(0, eq);
            int end = key.equals("sasl.jaas.config") ? rest.length() : rest.indexOf(';', eq);
            if (end < 0) end = rest.length();
            props.put(key, rest.substring(eq + 1, end));
            rest = end >= rest.length() ? "" : rest.substring(end + 1);
        }
        String out;
        try (Admin admin = Admin.create(props)) {
            try {
                switch (args[0]) {
                    case "create": {
                        CreateDelegationTokenOptions options = new CreateDelegationTokenOptions()
                            .renewers(principals(args[4]))
                            .maxLifetimeMs(Long.parseLong(args[5]));
                        if (!args[3].equals("-")) options.owner(principal(args[3]));
                        DelegationToken token = admin.createDelegationToken(options)
                            .delegationToken().get(60, TimeUnit.SECONDS);
                        out = "{\"token\": " + json(token) + "}";
                        break;
                    }
                    case "describe": {
                        DescribeDelegationTokenOptions options = new DescribeDelegationTokenOptions();
                        if (!args[3].equals("-")) options.owners(principals(args[3]));
                        List<DelegationToken> tokens = new ArrayList<>(admin.describeDelegationToken(options)
                            .delegationTokens().get(60, TimeUnit.SECONDS));
                        tokens.sort(Comparator.comparing(t -> t.tokenInfo().tokenId()));
                        StringBuilder b = new StringBuilder("{\"tokens\": [");
                        for (int i = 0; i < tokens.size(); i++) {
                            if (i > 0) b.append(", ");
                            b.append(json(tokens.get(i)));
                        }
                        out = b.append("]}").toString();
                        break;
                    }
                    case "renew": {
                        long expiry = admin.renewDelegationToken(Base64.getDecoder().decode(args[3]),
                                new RenewDelegationTokenOptions().renewTimePeriodMs(Long.parseLong(args[4])))
                            .expiryTimestamp().get(60, TimeUnit.SECONDS);
                        out = "{\"expiry\": " + expiry + "}";
                        break;
                    }
                    case "expire": {
                        long expiry = admin.expireDelegationToken(Base64.getDecoder().decode(args[3]),
                                new ExpireDelegationTokenOptions().expiryTimePeriodMs(Long.parseLong(args[4])))
                            .expiryTimestamp().get(60, TimeUnit.SECONDS);
                        out = "{\"expiry\": " + expiry + "}";
                        break;
                    }
                    case "create-renew": {
                        Properties other = (Properties) props.clone();
                        other.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[3]);
                        try (Admin second = Admin.create(other)) {
                            second.describeCluster().nodes().get(60, TimeUnit.SECONDS);
                            List<String> renewed = new ArrayList<>();
                            List<String> expired = new ArrayList<>();
                            String stage = "create";
                            try {
                                for (int i = 0; i < Integer.parseInt(args[4]); i++) {
                                    stage = "create " + i;
                                    DelegationToken token = admin.createDelegationToken(new CreateDelegationTokenOptions())
                                        .delegationToken().get(60, TimeUnit.SECONDS);
                                    stage = "renew " + i;
                                    renewed.add(String.valueOf(second.renewDelegationToken(token.hmac(),
                                            new RenewDelegationTokenOptions().renewTimePeriodMs(Long.parseLong(args[5])))
                                        .expiryTimestamp().get(60, TimeUnit.SECONDS)));
                                    stage = "expire " + i;
                                    expired.add(String.valueOf(second.expireDelegationToken(token.hmac(),
                                            new ExpireDelegationTokenOptions().expiryTimePeriodMs(-1))
                                        .expiryTimestamp().get(60, TimeUnit.SECONDS)));
                                }
                            } catch (ExecutionException e) {
                                throw new ExecutionException(new RuntimeException(stage + ": " + e.getCause()));
                            }
                            out = "{\"renewed\": [" + String.join(", ", renewed) + "], \"expired\": ["
                                + String.join(", ", expired) + "]}";
                        }
                        break;
                    }
                    default:
                        throw new IllegalArgumentException("unknown command " + args[0]);
                }
            } catch (ExecutionException e) {
                Throwable cause = e.getCause();
                out = "{\"error\": " + quote(cause.getClass().getSimpleName() + ": " + cause.getMessage()) + "}";
            }
        }
        System.out.println(out);
    }

    private static KafkaPrincipal principal(String text) {
        int colon = text.indexOf(':');
        return new KafkaPrincipal(text.substring(0, colon), text.substring(colon + 1));
    }

    private static List<KafkaPrincipal> principals(String list) {
        List<KafkaPrincipal> out = new ArrayList<>();
        if (list.equals("-")) return out;
        for (String p : list.split(",")) out.add(principal(p));
        return out;
    }

    private static String json(DelegationToken token) {
        TokenInformation info = token.tokenInfo();
        List<String> renewers = new ArrayList<>();
        for (KafkaPrincipal r : info.renewers()) renewers.add(quote(r.toString()));
        return "{\"id\": " + quote(info.tokenId())
            + ", \"hmac\": " + quote(token.hmacAsBase64String())
            + ", \"owner\": " + quote(info.owner().toString())
            + ", \"requester\": " + quote(String.valueOf(info.tokenRequester()))
            + ", \"renewers\": [" + String.join(", ", renewers) + "]"
            + ", \"issue\": " + info.issueTimestamp()
            + ", \"expiry\": " + info.expiryTimestamp()
            + ", \"max\": " + info.maxTimestamp() + "}";
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }
}
