package dev.bridge.runtime;

import dev.bridge.runtime.gearman.GearmanJob;
import java.time.LocalDateTime;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.Locale;
import java.util.logging.ConsoleHandler;
import java.util.logging.Formatter;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * The log level switch and the per-job log lines of docs/workers.md, on java.util.logging (the
 * JDK's {@link System.Logger} backend, which the runtime logs through).
 *
 * <p>Levels: {@code debug} = {@code FINE}, {@code info} = {@code INFO}, {@code warning} (or
 * {@code warn}) = {@code WARNING}, {@code error} = {@code SEVERE}. Each job's answer is logged at
 * {@code FINE} ({@code job function=... outcome=OK}), every error answer at {@code WARNING}
 * ({@code job failed ... message="..."}).
 */
public final class Logging {
    /** How much of an error message a {@code job failed} line keeps. */
    public static final int MAX_MESSAGE_CHARS = 200;
    private static final System.Logger JOBS = System.getLogger(Worker.class.getName());
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss.SSS");

    private Logging() {
    }

    /** {@code debug}, {@code info}, {@code warning} or {@code error} for a level's name (any case, {@code warn}), else null. */
    public static String normalize(String level) {
        return switch (level.strip().toLowerCase(Locale.ROOT)) {
            case "debug" -> "debug";
            case "info" -> "info";
            case "warning", "warn" -> "warning";
            case "error" -> "error";
            default -> null;
        };
    }

    /** The java.util.logging level of a level name. */
    public static Level julLevel(String level) {
        String name = normalize(level);
        if (name == null) {
            throw new IllegalArgumentException("unknown log level '" + quote(level) + "'");
        }
        return switch (name) {
            case "debug" -> Level.FINE;
            case "warning" -> Level.WARNING;
            case "error" -> Level.SEVERE;
            default -> Level.INFO;
        };
    }

    /**
     * Sets the root logger and its handlers to {@code level}. Unless the program configured
     * java.util.logging itself (a {@code java.util.logging.config.*} or
     * {@code java.util.logging.SimpleFormatter.format} property), the console handler writes one
     * line per record: {@code 2026-11-30 15:04:05.123 WARNING dev.bridge.runtime.Worker: ...}.
     */
    public static void configure(String level) {
        Level jul = julLevel(level);
        Logger root = Logger.getLogger("");
        root.setLevel(jul);
        boolean userFormat = System.getProperty("java.util.logging.config.file") != null
                || System.getProperty("java.util.logging.config.class") != null
                || System.getProperty("java.util.logging.SimpleFormatter.format") != null;
        for (Handler handler : root.getHandlers()) {
            handler.setLevel(jul);
            if (!userFormat && handler instanceof ConsoleHandler) {
                handler.setFormatter(new OneLine());
            }
        }
    }

    /**
     * Text a caller chose, safe inside one log line, escaped as a JSON string is (docs/workers.md):
     * {@code \"}, {@code \\}, {@code \n}, {@code \r}, {@code \t}, and every other control,
     * separator, format, unassigned or lone surrogate character as {@code \}{@code uXXXX}: no caller
     * can start a line of its own or end a quoted field.
     */
    public static String quote(String text) {
        StringBuilder out = new StringBuilder(text.length());
        text.codePoints().forEach(cp -> {
            int type = Character.getType(cp);
            boolean unsafe = Character.isISOControl(cp) || type == Character.FORMAT
                    || type == Character.UNASSIGNED || type == Character.LINE_SEPARATOR
                    || type == Character.PARAGRAPH_SEPARATOR || type == Character.SURROGATE;
            if (cp == '\\' || cp == '"') {
                out.append('\\').appendCodePoint(cp);
            } else if (cp == '\n') {
                out.append("\\n");
            } else if (cp == '\r') {
                out.append("\\r");
            } else if (cp == '\t') {
                out.append("\\t");
            } else if (!unsafe) {
                out.appendCodePoint(cp);
            } else {
                for (char c : Character.toChars(cp)) {
                    out.append(String.format("\\u%04x", (int) c));
                }
            }
        });
        return out.toString();
    }

    /**
     * Logs a job's answer, once it has been sent: at debug for every job, at warning (with the
     * message) for every answer but OK. {@code outcome} is a status code name or {@code WORK_FAIL}.
     */
    static void job(GearmanJob job, String encoding, long startNanos, String outcome, String message,
            String traceId) {
        boolean ok = "OK".equals(outcome);
        System.Logger.Level level = ok ? System.Logger.Level.DEBUG : System.Logger.Level.WARNING;
        if (!JOBS.isLoggable(level)) {
            return;
        }
        JOBS.log(level, jobLine(job.function(), job.handleString(), encoding, job.declaredPayloadLength(),
                (System.nanoTime() - startNanos) / 1e9, outcome, ok ? null : message, traceId));
    }

    /** The words of a job line (docs/workers.md); {@code message} null for a successful job. */
    static String jobLine(String function, String handle, String encoding, long bytes, double seconds,
            String outcome, String message, String traceId) {
        StringBuilder line = new StringBuilder(message == null ? "job" : "job failed");
        line.append(" function=").append(quote(function)).append(" handle=").append(quote(handle))
                .append(" encoding=").append(encoding).append(" bytes=").append(bytes)
                .append(" seconds=").append(String.format(Locale.ROOT, "%.6f", seconds))
                .append(" outcome=").append(outcome);
        if (traceId != null) {
            line.append(" trace_id=").append(traceId);
        }
        if (message != null) {
            boolean isCut = message.codePointCount(0, message.length()) > MAX_MESSAGE_CHARS;
            String cut = isCut ? message.substring(0, message.offsetByCodePoints(0, MAX_MESSAGE_CHARS)) : message;
            line.append(" message=\"").append(quote(cut)).append(isCut ? "...\"" : "\"");
        }
        return line.toString();
    }

    /** One line per record: time, level (FINE as DEBUG, SEVERE as ERROR), logger, message. */
    static final class OneLine extends Formatter {
        @Override
        public String format(LogRecord record) {
            String level = record.getLevel() == Level.SEVERE ? "ERROR"
                    : record.getLevel().intValue() <= Level.FINE.intValue() ? "DEBUG" : record.getLevel().getName();
            StringBuilder out = new StringBuilder()
                    .append(LocalDateTime.ofInstant(record.getInstant(), ZoneId.systemDefault()).format(TIME))
                    .append(' ').append(level).append(' ').append(record.getLoggerName()).append(": ")
                    .append(formatMessage(record));
            if (record.getThrown() != null) {
                out.append(": ").append(record.getThrown());
            }
            return out.append(System.lineSeparator()).toString();
        }
    }
}
