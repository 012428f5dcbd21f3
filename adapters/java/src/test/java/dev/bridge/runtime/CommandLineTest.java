package dev.bridge.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.bridge.runtime.gearman.ServerAddress;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The worker command line of docs/workers.md: flags, environment fallbacks, exits. */
@Timeout(60)
class CommandLineTest {
    private static final Map<String, String> NO_ENV = Map.of();

    private static CommandLine parse(Map<String, String> env, String... args) throws CommandLine.Exit {
        return CommandLine.parser("w").option("--greeting", "TEXT", "what to say").tryParse(args, env);
    }

    private static String error(Map<String, String> env, String... args) {
        CommandLine.Exit exit = assertThrows(CommandLine.Exit.class, () -> parse(env, args));
        assertEquals(2, exit.status(), exit.text());
        assertFalse(exit.text().contains("\n"), "one line: " + exit.text());
        assertTrue(exit.text().startsWith("w: error: ") && exit.text().endsWith(" (see --help)"), exit.text());
        return exit.text();
    }

    @Test
    void defaultsFlagsAndBothSpellings() throws Exception {
        CommandLine d = parse(NO_ENV);
        assertEquals(List.of(new ServerAddress("127.0.0.1", 4730)), d.servers());
        assertEquals(1, d.concurrency());
        assertEquals("info", d.logLevel());
        CommandLine c = parse(NO_ENV, "--servers", "a:1,tls://b:2", "--concurrency=8", "--log-level", "WARN",
                "--greeting=hi", "--max-request-bytes", "1000", "--read-timeout", "1.5", "--client-id", "me");
        assertEquals(List.of(new ServerAddress("a", 1), ServerAddress.parse("tls://b:2")), c.servers());
        assertEquals(8, c.concurrency());
        assertEquals("warning", c.logLevel());
        assertEquals("hi", c.option("--greeting").orElseThrow());
        assertTrue(c.option("--other").isEmpty());
        c.workerBuilder(); // the extras are valid builder settings
        assertEquals("1024", String.valueOf(parse(NO_ENV, "--concurrency", "1024").concurrency()));
    }

    @Test
    void environmentFallbacksEmptyIsUnsetCommandLineWins() throws Exception {
        Map<String, String> env = Map.of("BRIDGE_SERVERS", "e:7", "BRIDGE_CONCURRENCY", "3", "BRIDGE_LOG_LEVEL", "debug");
        CommandLine e = parse(env);
        assertEquals(List.of(new ServerAddress("e", 7)), e.servers());
        assertEquals(3, e.concurrency());
        assertEquals("debug", e.logLevel());
        CommandLine wins = parse(env, "--servers", "c:9", "--concurrency", "2", "--log-level", "error");
        assertEquals(List.of(new ServerAddress("c", 9)), wins.servers());
        assertEquals(2, wins.concurrency());
        assertEquals("error", wins.logLevel());
        CommandLine empty = parse(Map.of("BRIDGE_SERVERS", "", "BRIDGE_CONCURRENCY", "", "BRIDGE_LOG_LEVEL", ""));
        assertEquals(1, empty.concurrency());
        assertEquals("info", empty.logLevel());
        assertEquals(4730, empty.servers().get(0).port());
    }

    @Test
    void badFlagsAndValuesAreOneLineNamingTheFlagOrVariable() {
        assertEquals("w: error: --concurrency must be an integer from 1 to 1024, not '0' (see --help)",
                error(NO_ENV, "--concurrency", "0"));
        assertTrue(error(NO_ENV, "--concurrency=1025").contains("not '1025'"));
        assertTrue(error(NO_ENV, "--concurrency", "two").contains("not 'two'"));
        assertTrue(error(Map.of("BRIDGE_CONCURRENCY", "x"))
                .startsWith("w: error: BRIDGE_CONCURRENCY must be an integer"));
        assertTrue(error(Map.of("BRIDGE_LOG_LEVEL", "loud")).contains("BRIDGE_LOG_LEVEL must be debug, info"));
        assertTrue(error(NO_ENV, "--log-level", "trace").contains("--log-level must be"));
        assertTrue(error(NO_ENV, "--bogus").contains("unknown option '--bogus'"));
        assertTrue(error(NO_ENV, "--bogus=1").contains("unknown option '--bogus'"));
        assertTrue(error(NO_ENV, "--servers").contains("--servers needs a value"));
        assertTrue(error(NO_ENV, "--servers", "host:notaport").startsWith("w: error: --servers: "));
        assertTrue(error(Map.of("BRIDGE_SERVERS", "h:99999")).startsWith("w: error: BRIDGE_SERVERS: "));
        assertTrue(error(NO_ENV, "stray").contains("unexpected argument 'stray'"));
        assertTrue(error(NO_ENV, "--read-timeout", "0").contains("--read-timeout must be"));
        assertTrue(error(NO_ENV, "--max-request-bytes", "-1").contains("--max-request-bytes must be"));
        assertTrue(error(NO_ENV, "--version=2").contains("--version takes no value"));
        // A caller's text cannot make a second line.
        assertTrue(error(NO_ENV, "--log-level", "a\nb").contains("not 'a\\nb'"));
    }

    @Test
    void valuesAreCheckedAsTheContractSays() {
        // integers are plain decimal digits; a port is 1-65535 (docs/workers.md)
        assertEquals("w: error: --concurrency must be an integer from 1 to 1024, not '+4' (see --help)",
                error(NO_ENV, "--concurrency=+4"));
        assertTrue(error(NO_ENV, "--concurrency", " 4").contains("not ' 4'"));
        assertTrue(error(Map.of("BRIDGE_CONCURRENCY", "+4")).startsWith("w: error: BRIDGE_CONCURRENCY must be"));
        assertTrue(error(NO_ENV, "--max-request-bytes", "+5").contains("--max-request-bytes must be"));
        for (String bad : new String[] {"127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:+47", "127.0.0.1:", ",", ":47"}) {
            assertTrue(error(NO_ENV, "--servers", bad).startsWith("w: error: --servers: "), bad);
        }
        assertTrue(error(NO_ENV, "--read-timeout", "3601").contains("at most 3600"));
    }

    @Test
    void securitySettingsAreLoadedWhileParsing(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        String garbage = error(Map.of("BRIDGE_KEYS", "garbage"));
        assertTrue(garbage.startsWith("w: error: BRIDGE_KEYS"), garbage);
        assertFalse(garbage.contains("garbage"), "never echoes a key: " + garbage);
        String shortKey = error(Map.of("BRIDGE_KEYS", "k1:c2hvcnQ="));
        assertFalse(shortKey.contains("c2hvcnQ"), shortKey);
        assertTrue(error(Map.of("BRIDGE_KEYS_FILE", "/nonexistent")).startsWith("w: error: BRIDGE_KEYS_FILE"));
        assertTrue(error(Map.of("BRIDGE_TLS_CA", "/nonexistent"), "--servers", "tls://127.0.0.1:1")
                .startsWith("w: error: BRIDGE_TLS_*: "));
        String key = java.util.Base64.getEncoder().encodeToString(new byte[32]);
        CommandLine ok = parse(Map.of("BRIDGE_KEYS", "k1:" + key));
        assertEquals("k1", ok.workerBuilder().build().keys().ids());
    }

    @Test
    void helpAndVersionExitZero() {
        for (String flag : List.of("--help", "-h")) {
            CommandLine.Exit help = assertThrows(CommandLine.Exit.class, () -> parse(NO_ENV, "--concurrency", "0", flag));
            assertEquals(0, help.status());
            for (String word : List.of("usage: w", "--servers", "BRIDGE_SERVERS", "--concurrency", "BRIDGE_CONCURRENCY",
                    "--log-level", "BRIDGE_LOG_LEVEL", "--max-request-bytes", "--read-timeout", "--greeting", "--version")) {
                assertTrue(help.text().contains(word), word + " in\n" + help.text());
            }
        }
        CommandLine.Exit version = assertThrows(CommandLine.Exit.class, () -> parse(NO_ENV, "--version"));
        assertEquals(0, version.status());
        assertEquals("w (bridge java runtime " + CommandLine.RUNTIME_VERSION + ")", version.text());
    }

    @Test
    void runtimeVersionIsThePomVersion() throws IOException {
        String pom = Files.readString(Path.of(System.getProperty("bridge.repo.root"), "adapters", "java", "pom.xml"));
        assertTrue(pom.contains("<artifactId>bridge-runtime</artifactId>\n  <version>" + CommandLine.RUNTIME_VERSION
                + "</version>"), "pom.xml's version must be CommandLine.RUNTIME_VERSION");
    }

    @Test
    void levelNamesMapOntoJulLevels() {
        assertEquals(java.util.logging.Level.FINE, Logging.julLevel("DEBUG"));
        assertEquals(java.util.logging.Level.INFO, Logging.julLevel("info"));
        assertEquals(java.util.logging.Level.WARNING, Logging.julLevel("warn"));
        assertEquals(java.util.logging.Level.WARNING, Logging.julLevel("Warning"));
        assertEquals(java.util.logging.Level.SEVERE, Logging.julLevel("error"));
        assertNull(Logging.normalize("fine"));
    }

    /** A process: exit status, stdout, stderr. */
    private record Run(int status, String out, String err) {
    }

    private static Run run(Map<String, String> env, String... args) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "-cp", System.getProperty("java.class.path"),
                CommandLineMain.class.getName()));
        command.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.environment().keySet().removeIf(k -> k.startsWith("BRIDGE_"));
        pb.environment().putAll(env);
        Process p = pb.start();
        p.getOutputStream().close();
        byte[] out = p.getInputStream().readAllBytes();
        byte[] err = p.getErrorStream().readAllBytes();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        return new Run(p.exitValue(), new String(out, StandardCharsets.UTF_8), new String(err, StandardCharsets.UTF_8));
    }

    @Test
    void aProgramExitsAsTheContractSaysAndTheLevelSwitchWorks() throws Exception {
        Run help = run(Map.of(), "--help");
        assertEquals(0, help.status(), help.err());
        assertTrue(help.out().startsWith("usage: cli-worker"), help.out());
        assertEquals("", help.err());

        Run version = run(Map.of(), "--version");
        assertEquals(0, version.status());
        assertEquals("cli-worker (bridge java runtime " + CommandLine.RUNTIME_VERSION + ")\n", version.out());

        Run bad = run(Map.of(), "--concurrency", "0");
        assertEquals(2, bad.status());
        assertEquals("", bad.out());
        assertEquals("cli-worker: error: --concurrency must be an integer from 1 to 1024, not '0' (see --help)\n",
                bad.err());

        Run envBad = run(Map.of("BRIDGE_LOG_LEVEL", "loud"));
        assertEquals(2, envBad.status());
        assertEquals(1, envBad.err().lines().count(), envBad.err());
        assertTrue(envBad.err().contains("BRIDGE_LOG_LEVEL"), envBad.err());

        Run info = run(Map.of("BRIDGE_SERVERS", "x:1"), "--greeting", "hi");
        assertEquals(0, info.status(), info.err());
        assertTrue(info.out().contains("concurrency=1 level=info greeting=hi"), info.out());
        assertTrue(info.out().contains("x:1"), info.out());
        assertTrue(info.err().contains(" INFO cli-worker: an info line"), info.err());
        assertFalse(info.err().contains("a debug line"), info.err());
        assertEquals(1, info.err().lines().count(), "one line per record:\n" + info.err());

        Run debug = run(Map.of("BRIDGE_LOG_LEVEL", "debug"));
        assertTrue(debug.err().contains(" DEBUG cli-worker: a debug line"), debug.err());
        Run quiet = run(Map.of("BRIDGE_LOG_LEVEL", "debug"), "--log-level", "error");
        assertEquals("", quiet.err());
    }
}
