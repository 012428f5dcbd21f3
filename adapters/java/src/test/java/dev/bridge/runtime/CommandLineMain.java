package dev.bridge.runtime;

/**
 * A program for {@link CommandLineTest}: parses its command line with {@link CommandLine} (which
 * exits on --help, --version and errors, and sets the log level), prints what it got and logs one
 * debug and one info line.
 */
public final class CommandLineMain {
    private CommandLineMain() {
    }

    public static void main(String[] args) {
        CommandLine options = CommandLine.parser("cli-worker").option("--greeting", "TEXT", "what to say").parse(args);
        System.out.println("servers=" + options.servers() + " concurrency=" + options.concurrency()
                + " level=" + options.logLevel() + " greeting=" + options.option("--greeting").orElse("-"));
        System.Logger log = System.getLogger("cli-worker");
        log.log(System.Logger.Level.DEBUG, "a debug line");
        log.log(System.Logger.Level.INFO, "an info line");
    }
}
