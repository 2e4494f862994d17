export * from "./domain/rules.js";
