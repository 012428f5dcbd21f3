package dev.bridge.runtime;

import dev.bridge.runtime.gearman.ServerAddress;
import dev.bridge.runtime.gearman.TlsSettings;
import dev.bridge.runtime.security.Keyring;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The worker command line every bridge runtime shares (docs/workers.md): {@code --servers},
 * {@code --concurrency}, {@code --log-level}, {@code --help}, {@code --version}, with the
 * environment fallbacks {@code BRIDGE_SERVERS}, {@code BRIDGE_CONCURRENCY} and
 * {@code BRIDGE_LOG_LEVEL}, plus this runtime's own {@code --max-request-bytes},
 * {@code --read-timeout} and {@code --client-id}.
 *
 * <pre>{@code
 * public static void main(String[] args) throws InterruptedException {
 *     CommandLine options = CommandLine.parse("greeter-worker", args); // exits on --help, --version, errors
 *     Worker worker = options.workerBuilder().build();
 *     GreeterBridge.register(worker, new Main());
 *     worker.run();
 * }
 * }</pre>
 *
 * <p>{@code --help} prints the usage on stdout and exits 0; {@code --version} prints one line
 * {@code PROGRAM (bridge java runtime VERSION)} and exits 0; a bad flag or value prints one line
 * {@code PROGRAM: error: ... (see --help)} on stderr and exits 2. A parse that succeeds also sets
 * the log level ({@link Logging#configure(String)}). A program's own options are declared with
 * {@link #parser(String)}.
 */
public final class CommandLine {
    /** This runtime's version, as in its pom.xml. */
    public static final String RUNTIME_VERSION = "0.1.0";
    /** The largest {@code --concurrency}. */
    public static final int MAX_CONCURRENCY = 1024;
    static final String DEFAULT_SERVERS = "127.0.0.1:4730";

    private final String program;
    private final List<ServerAddress> servers;
    private final int concurrency;
    private final String logLevel;
    private final Long maxRequestBytes;
    private final Duration readTimeout;
    private final String clientId;
    private final Map<String, String> options;
    private final Keyring keys;
    private final TlsSettings tls;

    private CommandLine(String program, List<ServerAddress> servers, int concurrency, String logLevel,
            Long maxRequestBytes, Duration readTimeout, String clientId, Map<String, String> options,
            Keyring keys, TlsSettings tls) {
        this.keys = keys;
        this.tls = tls;
        this.program = program;
        this.servers = servers;
        this.concurrency = concurrency;
        this.logLevel = logLevel;
        this.maxRequestBytes = maxRequestBytes;
        this.readTimeout = readTimeout;
        this.clientId = clientId;
        this.options = options;
    }

    /** Parses {@code args} with the environment; the program is named after the main class. */
    public static CommandLine parse(String[] args) {
        return parser(defaultProgram()).parse(args);
    }

    /** Parses {@code args} with the environment, for the program {@code program}. */
    public static CommandLine parse(String program, String[] args) {
        return parser(program).parse(args);
    }

    /** A parser to which a program adds its own options before parsing. */
    public static Parser parser(String program) {
        return new Parser(program);
    }

    public String program() {
        return program;
    }

    public List<ServerAddress> servers() {
        return servers;
    }

    public int concurrency() {
        return concurrency;
    }

    /** {@code debug}, {@code info}, {@code warning} or {@code error}. */
    public String logLevel() {
        return logLevel;
    }

    /** {@code --client-id}, if given. */
    public Optional<String> clientId() {
        return Optional.ofNullable(clientId);
    }

    /** A program option's value (declared with {@link Parser#option}), if given. */
    public Optional<String> option(String name) {
        return Optional.ofNullable(options.get(name));
    }

    /** A worker builder set from these options (servers, concurrency, and the extras given). */
    public Worker.Builder workerBuilder() {
        Worker.Builder b = Worker.builder().servers(servers).concurrency(concurrency).keys(keys);
        if (tls != null) {
            b.tls(tls);
        }
        if (maxRequestBytes != null) {
            b.maxRequestBytes(maxRequestBytes);
        }
        if (readTimeout != null) {
            b.readTimeout(readTimeout);
        }
        if (clientId != null) {
            b.clientId(clientId);
        }
        return b;
    }

    /** The one line {@code --version} prints. */
    public static String versionLine(String program) {
        return program + " (bridge java runtime " + RUNTIME_VERSION + ")";
    }

    /** The main class's simple name (or the jar's file name), as {@code java} was started. */
    static String defaultProgram() {
        String command = System.getProperty("sun.java.command", "").strip();
        String first = command.isEmpty() ? "" : command.split("\\s+")[0];
        if (first.endsWith(".jar")) {
            return first.substring(first.lastIndexOf('/') + 1);
        }
        String name = first.substring(first.lastIndexOf('.') + 1);
        return name.isEmpty() ? "worker" : name;
    }

    /** Why the command line ends the program: {@code --help}, {@code --version} or an error. */
    public static final class Exit extends Exception {
        private static final long serialVersionUID = 1L;
        private final int status;
        private final String text;

        Exit(int status, String text) {
            super(text, null, false, false);
            this.status = status;
            this.text = text;
        }

        /** 0 for {@code --help} and {@code --version}, 2 for an error. */
        public int status() {
            return status;
        }

        /** What goes to stdout (status 0) or, as one line, to stderr (status 2). */
        public String text() {
            return text;
        }
    }

    /** Parses a worker's command line; add the program's own options first. */
    public static final class Parser {
        private static final String[][] STANDARD = {
            {"--servers", "HOST:PORT[,...]", "job servers, tls:// for TLS (env BRIDGE_SERVERS; default "
                    + DEFAULT_SERVERS + ")"},
            {"--concurrency", "N", "jobs run at once, 1-" + MAX_CONCURRENCY + " (env BRIDGE_CONCURRENCY; default 1)"},
            {"--log-level", "LEVEL", "debug, info, warning or error (env BRIDGE_LOG_LEVEL; default info)"},
            {"--max-request-bytes", "N", "largest request payload (default "
                    + Worker.DEFAULT_MAX_REQUEST_BYTES + ")"},
            {"--read-timeout", "SECONDS", "an unanswered job server is reconnected after this (default 5)"},
            {"--client-id", "NAME", "the name gearmand's `workers` command shows"},
        };
        private final String program;
        private final Map<String, String[]> extra = new LinkedHashMap<>();

        private Parser(String program) {
            this.program = program;
        }

        /** Declares a program option {@code --name VALUE}, listed by {@code --help}. */
        public Parser option(String name, String metavar, String help) {
            if (!name.startsWith("--") || name.contains("=") || isStandard(name) || extra.containsKey(name)) {
                throw new IllegalArgumentException("cannot declare option " + name);
            }
            extra.put(name, new String[] {name, metavar, help});
            return this;
        }

        /**
         * Parses {@code args} with the process environment. Prints the usage or version and exits
         * 0, or prints one error line and exits 2, when the command line says so.
         */
        public CommandLine parse(String[] args) {
            try {
                CommandLine parsed = tryParse(args, System.getenv());
                Logging.configure(parsed.logLevel());
                return parsed;
            } catch (Exit exit) {
                PrintStream out = exit.status() == 0 ? System.out : System.err;
                out.println(exit.text());
                out.flush();
                System.exit(exit.status());
                throw new AssertionError("unreachable");
            }
        }

        /** Parses without exiting or configuring logging: {@code env} stands for the environment. */
        public CommandLine tryParse(String[] args, Map<String, String> env) throws Exit {
            Map<String, String> given = new LinkedHashMap<>();
            for (int i = 0; i < args.length; i++) {
                String arg = args[i];
                if (arg.equals("--help") || arg.equals("-h")) {
                    throw new Exit(0, usage());
                }
                if (arg.equals("--version")) {
                    throw new Exit(0, versionLine(program));
                }
                if (!arg.startsWith("--") || arg.equals("--")) {
                    throw error("unexpected argument '" + Logging.quote(arg) + "'");
                }
                int eq = arg.indexOf('=');
                String name = eq < 0 ? arg : arg.substring(0, eq);
                if (name.equals("--help") || name.equals("--version")) {
                    throw error(name + " takes no value");
                }
                if (!isStandard(name) && !extra.containsKey(name)) {
                    throw error("unknown option '" + Logging.quote(name) + "'");
                }
                String value;
                if (eq >= 0) {
                    value = arg.substring(eq + 1);
                } else if (i + 1 < args.length) {
                    value = args[++i];
                } else {
                    throw error(name + " needs a value");
                }
                given.put(name, value);
            }
            String serversText = pick(given, env, "--servers", "BRIDGE_SERVERS", DEFAULT_SERVERS);
            List<ServerAddress> servers;
            try {
                servers = ServerAddress.parseList(serversText);
            } catch (IllegalArgumentException e) {
                throw error(source(given, "--servers", "BRIDGE_SERVERS") + ": " + Logging.quote(e.getMessage()));
            }
            Keyring keys;
            try {
                keys = Keyring.fromEnv(env);
            } catch (IllegalArgumentException e) {
                String variable = env.getOrDefault("BRIDGE_KEYS", "").isEmpty() ? "BRIDGE_KEYS_FILE" : "BRIDGE_KEYS";
                String why = Logging.quote(String.valueOf(e.getMessage()));
                throw error(why.startsWith("BRIDGE_") ? why : variable + ": " + why);
            }
            TlsSettings tls = null;
            if (servers.stream().anyMatch(ServerAddress::tls)) {
                try {
                    tls = TlsSettings.fromEnv(env);
                    tls.check();
                } catch (IllegalArgumentException e) {
                    throw error("BRIDGE_TLS_*: " + Logging.quote(String.valueOf(e.getMessage())));
                }
            }
            String concurrencyText = pick(given, env, "--concurrency", "BRIDGE_CONCURRENCY", "1");
            int concurrency = (int) integer(concurrencyText, 1, MAX_CONCURRENCY,
                    source(given, "--concurrency", "BRIDGE_CONCURRENCY"));
            String levelText = pick(given, env, "--log-level", "BRIDGE_LOG_LEVEL", "info");
            String level = Logging.normalize(levelText);
            if (level == null) {
                throw error(source(given, "--log-level", "BRIDGE_LOG_LEVEL")
                        + " must be debug, info, warning or error, not '" + Logging.quote(levelText) + "'");
            }
            Long maxRequestBytes = given.containsKey("--max-request-bytes") ? integer(given.get("--max-request-bytes"),
                    0, Integer.MAX_VALUE - 128 * 1024, "--max-request-bytes") : null;
            Duration readTimeout = null;
            if (given.containsKey("--read-timeout")) {
                readTimeout = seconds(given.get("--read-timeout"), "--read-timeout");
            }
            Map<String, String> options = new LinkedHashMap<>();
            for (String name : extra.keySet()) {
                if (given.containsKey(name)) {
                    options.put(name, given.get(name));
                }
            }
            return new CommandLine(program, servers, concurrency, level, maxRequestBytes, readTimeout,
                    given.get("--client-id"), Collections.unmodifiableMap(options), keys, tls);
        }

        /** The text {@code --help} prints. */
        public String usage() {
            List<String[]> all = new ArrayList<>(List.of(STANDARD));
            all.addAll(extra.values());
            StringBuilder out = new StringBuilder("usage: " + program + " [options]\n\n"
                    + "Serves bridge rpcs to Python callers through Gearman job servers.\n\noptions:\n");
            for (String[] o : all) {
                out.append(String.format("  %-34s %s%n", o[0] + " " + o[1], o[2]));
            }
            out.append(String.format("  %-34s %s%n", "-h, --help", "show this help and exit"));
            out.append(String.format("  %-34s %s", "--version", "show the version and exit"));
            return out.toString();
        }

        private static boolean isStandard(String name) {
            for (String[] o : STANDARD) {
                if (o[0].equals(name)) {
                    return true;
                }
            }
            return false;
        }

        /** The command line's value, else the environment's when not empty, else the default. */
        private static String pick(Map<String, String> given, Map<String, String> env, String flag,
                String variable, String fallback) {
            if (given.containsKey(flag)) {
                return given.get(flag);
            }
            String value = env.get(variable);
            return value == null || value.isEmpty() ? fallback : value;
        }

        private static String source(Map<String, String> given, String flag, String variable) {
            return given.containsKey(flag) ? flag : variable;
        }

        private long integer(String text, long min, long max, String what) throws Exit {
            try {
                if (!text.matches("[0-9]{1,18}")) { // plain decimal digits: no sign, no space
                    throw new NumberFormatException(text);
                }
                long value = Long.parseLong(text);
                if (value >= min && value <= max) {
                    return value;
                }
            } catch (NumberFormatException e) {
                // reported below
            }
            throw error(what + " must be an integer from " + min + " to " + max + ", not '" + Logging.quote(text) + "'");
        }

        private Duration seconds(String text, String what) throws Exit {
            try {
                double value = Double.parseDouble(text.strip());
                if (value > 0 && value <= 3600) {
                    return Duration.ofNanos((long) (value * 1e9));
                }
            } catch (NumberFormatException e) {
                // reported below
            }
            throw error(what + " must be a number of seconds above 0, at most 3600, not '" + Logging.quote(text) + "'");
        }

        private Exit error(String message) {
            return new Exit(2, program + ": error: " + message + " (see --help)");
        }
    }
}
