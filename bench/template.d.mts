/** Types of bench/template.mjs (used by the template tests). */
export declare function generateStack(n: number): { main: string; bundle: string };
